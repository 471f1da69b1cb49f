"""`blossom sweep`: the grid, resuming, and a tiny real sweep through `flwr run`."""

from pathlib import Path

import pytest
from results_helpers import assert_readable_png, make_experiment
from rounds import global_arrays, profiles

from blossom_app.errors import ConfigError
from blossom_app.reporting.csv_files import read_rows
from blossom_app.reporting.layout import find_experiments
from blossom_app.reporting.output import complete_experiment
from blossom_app.server.server_state import ServerState
from blossom_app.tools.cli import main
from blossom_app.tools.sweep import SweepGrid, run_sweep

APP = Path(__file__).parents[1]
TINY = {"num-server-rounds": 2, "local-epochs": 1, "num-runs": 1, "batch-size": 32}
POLICIES = ("full-model", "private-head-fusion")


def tiny_grid(policies: tuple[str, ...] = POLICIES) -> SweepGrid:
    return SweepGrid(("watch",), ("iid",), ("1-1-1",), policies)


def test_default_grid_is_the_papers_18_cells_and_the_local_baseline(tmp_path):
    cells = SweepGrid().cells(APP, tmp_path, {})
    assert len({cell.name for cell in cells}) == 18 + 6
    assert sum(cell.name.endswith("/local") for cell in cells) == 6
    assert {cell.config.mix.num_clients for cell in cells} == {10}
    assert cells[0].name == "watch/iid/0-0-10/full-model"
    assert cells[0].run_config["results-dir"] == str(tmp_path)


def test_an_adaptive_cell_is_its_policy_with_adaptive_personalization(tmp_path):
    [cell] = tiny_grid(("full-model+adaptive",)).cells(APP, tmp_path, TINY)
    assert cell.run_config["aggregation"] == "full-model"
    assert cell.run_config["personalization"] == "adaptive"
    assert cell.name == "watch/iid/1-1-1/full-model+adaptive"
    assert cell.directory(tmp_path).name == "full-model+adaptive"


def test_a_preset_cell_records_the_resolved_recipe(tmp_path):
    [cell] = tiny_grid(("local",)).cells(APP, tmp_path, {"preset": "paper"})
    assert cell.resolved["local-epochs"] == 1 and not cell.resolved["normalize-inputs"]


def test_a_bad_cell_fails_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="modality-mix"):
        SweepGrid(mixes=("1-1",)).cells(APP, tmp_path, {})
    with pytest.raises(ConfigError, match="no-such-key"):
        SweepGrid().cells(APP, tmp_path, {"no-such-key": 1})


def test_a_cell_is_finished_only_by_a_complete_experiment_of_its_config(tmp_path):
    [cell] = tiny_grid(("full-model",)).cells(APP, tmp_path, TINY)
    config = {**cell.resolved, "results-dir": "/moved/elsewhere"}
    path = make_experiment(tmp_path, "1-1-1", "full-model", [0.5], config=config)
    assert cell.finished(tmp_path) is None  # not complete yet
    complete_experiment(path)
    assert cell.finished(tmp_path) == path  # results-dir is not compared
    longer = {**TINY, "num-server-rounds": 3}
    [cell] = tiny_grid(("full-model",)).cells(APP, tmp_path, longer)
    assert cell.finished(tmp_path) is None


def test_a_key_added_since_an_experiment_ran_counts_as_its_default(tmp_path):
    [cell] = tiny_grid(("full-model",)).cells(APP, tmp_path, TINY)
    older = {k: v for k, v in cell.resolved.items() if k != "export-int8"}
    path = make_experiment(tmp_path, "1-1-1", "full-model", [0.5], config=older)
    complete_experiment(path)
    assert cell.finished(tmp_path) == path
    [int8] = tiny_grid(("full-model",)).cells(
        APP, tmp_path, {**TINY, "export-onnx": True, "export-int8": True}
    )
    assert int8.finished(tmp_path) is None
    assert cell.run_config["export-onnx"] is False  # sweeps export only if asked


def test_tiny_sweep_completes_resumes_and_compares(
    flwr_env, tmp_path, monkeypatch, capsys
):
    root = tmp_path / "sweep"
    # an "interrupted" sweep: only the first cell ran
    cells = tiny_grid().cells(APP, root, TINY)
    first = run_sweep(cells[:1], APP, root, env=flwr_env, progress=print)
    assert not first.failed, {k: o.output[-3000:] for k, o in first.failed.items()}

    # the whole sweep, through the CLI: the finished cell is skipped
    for key, value in flwr_env.items():
        monkeypatch.setenv(key, value)
    args = [
        "sweep",
        "--app",
        str(APP),
        "--results-dir",
        str(root),
        "--partitioners",
        "iid",
        "--policies",
        *POLICIES,
        "--mixes",
        "1-1-1",
        "--rounds",
        "2",
        "--num-runs",
        "1",
        "--run-config",
        "batch-size=32 local-epochs=1",
    ]
    assert main(args) == 0, capsys.readouterr().out[-3000:]
    printed = capsys.readouterr().out
    assert "watch/iid/1-1-1/full-model: already done" in printed
    assert "watch/iid/1-1-1/private-head-fusion: done in" in printed
    assert "2 complete (1 skipped), 0 failed" in printed

    complete, incomplete = find_experiments([root])
    assert len(complete) == 2 and not incomplete
    # export-onnx=false (a sweep's default): nothing is exported, nothing sent
    for experiment in complete:
        assert not list(experiment.rglob("models*"))
        traffic = read_rows(experiment / "run_0" / "communication.csv")
        assert {row["phase"] for row in traffic} == {"train", "evaluate"}
    comparison = root / "watch" / "iid" / "comparison"
    table = read_rows(comparison / "comparison.csv")
    assert [(r["mix"], r["policy"], r["rounds"]) for r in table] == [
        ("1-1-1", "full-model", "2"),
        ("1-1-1", "private-head-fusion", "2"),
    ]
    assert float(table[0]["weighted_accuracy_gain_pct"]) == 0.0
    assert "private-head-fusion" in printed and "(base)" in printed
    for path in comparison.glob("*.png"):
        assert_readable_png(path)

    # run again: nothing left to do
    assert main(args) == 0
    assert "2 complete (2 skipped), 0 failed" in capsys.readouterr().out
    assert len(find_experiments([root])[0]) == 2


def test_a_centralized_cell_trains_here_resumes_and_is_compared(tmp_path):
    """``centralized`` in a sweep's policies: the pooled-data baseline of the
    same config, run without Flower, skipped once done, in the table."""
    root = tmp_path / "sweep"
    [cell] = tiny_grid(("centralized",)).cells(APP, root, TINY)
    assert cell.resolved["aggregation"] == "centralized"
    assert cell.directory(root).name == "centralized"
    lines = []

    report = run_sweep([cell], APP, root, progress=lines.append)

    assert not report.failed, {k: o.output[-3000:] for k, o in report.failed.items()}
    assert report.completed[cell.name] == cell.finished(root)
    [comparison] = report.comparisons
    [row] = read_rows(comparison.out / "comparison.csv")
    assert (row["policy"], row["rounds"]) == ("centralized", "2")
    assert 0.0 <= float(row["weighted_accuracy_mean"]) <= 1.0
    again = run_sweep([cell], APP, root, progress=lines.append)
    assert again.skipped == [cell.name]


@pytest.mark.parametrize("bad", ["batch-size=", "x=[1", "num-rounds=3"])
def test_bad_run_config_stops_the_sweep_before_anything_runs(bad, tmp_path, capsys):
    code = main(["sweep", "--run-config", bad, "--results-dir", str(tmp_path)])
    assert code == 2
    assert "--run-config" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_an_interrupted_cell_with_a_usable_checkpoint_is_resumed(tmp_path):
    [cell] = tiny_grid(("full-model",)).cells(APP, tmp_path, TINY)
    path = make_experiment(tmp_path, "1-1-1", "full-model", [0.5], config=cell.resolved)
    assert cell.interrupted(tmp_path) is None  # no checkpoint: run afresh
    state = ServerState.fresh(profiles(), arrays=global_arrays())
    state.save(path / "checkpoint.npz", cell.resolved)
    assert cell.interrupted(tmp_path) == path
    # a checkpoint of another config is not this cell's to resume
    state.save(path / "checkpoint.npz", {**cell.resolved, "num-server-rounds": 9})
    assert cell.interrupted(tmp_path) is None
    state.save(path / "checkpoint.npz", cell.resolved)
    complete_experiment(path)  # finished: skipped, not resumed
    assert cell.interrupted(tmp_path) is None and cell.finished(tmp_path) == path
