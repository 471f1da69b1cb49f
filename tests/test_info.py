"""`blossom info`: the app's choices, and what a results directory ran with."""

from results_helpers import make_experiment
from rounds import global_arrays, profiles

from blossom_app.reporting.output import complete_experiment
from blossom_app.server.server_state import ServerState
from blossom_app.tools.cli import main


def test_info_lists_datasets_modalities_and_policies(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "watch: 7 classes" in out
    assert "acc          128 x 3" in out and "gyro         128 x 3" in out
    assert "private-head-fusion  fusion, head" in out
    # a modality with a front end: what a device feeds its exported model
    assert (
        "image        1 x 28 x 28 (column 'image' -> standardized gray image "
        "(28 x 28); the exported model takes batch x height x width)"
    ) in out


def test_info_of_a_results_directory_shows_state_and_config(tmp_path, capsys):
    done = make_experiment(tmp_path, "3-3-4", "full-model", [0.5, 0.6])
    complete_experiment(done)
    died = make_experiment(tmp_path, "5-5-0", "private-head", [0.7], config={"seed": 7})
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "watch / iid / 3-3-4 / full-model: complete, 2 run(s)" in out
    assert "watch / iid / 5-5-0 / private-head: incomplete, 1 run(s)" in out
    assert "not resumable: No checkpoint at" in out
    state = ServerState.fresh(profiles(), arrays=global_arrays())
    state.server_round = 4
    state.save(died / "checkpoint.npz", {"seed": 7})
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"checkpoint after run 0, round 4: blossom run --resume {died}" in out
    assert "seed = 7" in out
    assert main(["info", str(tmp_path / "nothing")]) == 0
    assert "No experiment" in capsys.readouterr().out
