"""End to end: the real app under a real `flwr run` simulation (isolated FLWR_HOME,
own ports, managed SuperLink stopped afterwards; status checked with `flwr ls`)."""

import subprocess
import sys
from pathlib import Path

import onnxruntime
import pytest

from blossom_app.common.policies import fixed_policies, policy_keys
from blossom_app.reporting.csv_files import read_rows
from blossom_app.tools.flwr_runner import run_app

APP = Path(__file__).parents[1]
TINY = {
    "num-server-rounds": 2,
    "local-epochs": 1,
    "modality-mix": "1-1-1",
    "batch-size": 32,
}


def results_dir(env: dict[str, str]) -> Path:
    [path] = Path(env["BLOSSOM_RESULTS_DIR"]).glob("watch/iid/1-1-1/*/*")
    return path


#: Each policy once; two of them also run with the paper's preset (resolved by
#: the app, the explicit keys winning) and with adaptive personalization.
VARIANTS = {
    "full-model": {},
    "private-head": {"preset": "paper"},
    "private-head-fusion": {"personalization": "adaptive"},
}


POLICIES = fixed_policies()


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_no_private_block_ever_leaves_a_client(policy, flwr_env):
    outcome = run_app(
        APP,
        {**TINY, **policy_keys(policy), **VARIANTS[policy]},  # fixed unless said
        num_supernodes=3,
        env=flwr_env,
        timeout=600,
    )
    assert outcome.ok, outcome.output[-3000:]
    run = results_dir(flwr_env) / "run_0"
    sent_up = [
        r for r in read_rows(run / "communication.csv") if r["direction"] == "up"
    ]
    clients = read_rows(run / "client_metrics.csv")
    modalities = {r["partition_id"]: r["modalities"] for r in clients}

    # every node replied in every round, and none of its replies carried a
    # private block or an encoder of a modality it does not hold
    assert {(r["round"], r["partition_id"]) for r in sent_up} == {
        (str(rnd), str(p)) for rnd in (1, 2) for p in range(3)
    }
    for row in sent_up:
        assert row["block"] not in POLICIES[policy]
        if row["block"].startswith("encoder:"):
            assert (
                row["block"].removeprefix("encoder:") in modalities[row["partition_id"]]
            )
    shared = {"fusion", "head"} - POLICIES[policy]
    assert shared <= {row["block"] for row in sent_up}
    assert not (run / "rejections.csv").exists()

    # after the last round every node exported its personalized model on the
    # node (here: the shared disk), replied with metadata only, and the files
    # are self-contained and agree with torch
    exported = [
        r for r in read_rows(run / "communication.csv") if r["phase"] == "export"
    ]
    assert exported and {r["direction"] for r in exported} == {"down"}
    models = read_rows(run / "models.csv")
    assert {r["partition_id"] for r in models} == {"0", "1", "2"}
    for row in models:
        folder = Path(row["path"])
        assert row["status"] == "written" and folder.parent == run / "models"
        assert folder.name == f"partition-{row['partition_id']}-{row['modalities']}"
        assert sorted(p.name for p in folder.iterdir()) == [
            "model.json", "model.onnx", "model.pt"
        ]  # fmt: skip
        assert float(row["parity_max_abs_error"]) <= 1e-4
        session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
        names = [i.name for i in session.get_inputs()]
        assert names == row["modalities"].split("+")
    assert "3 of 3 personalized models exported" in outcome.output

    # what ran is recorded resolved; every evaluation names the client's own blocks
    config = (results_dir(flwr_env) / "config.toml").read_text()
    if policy == "private-head":  # the preset's values, the explicit keys kept
        assert "normalize-inputs = false" in config and 'transport = "fp32"' in config
        assert "local-epochs = 1" in config and "batch-size = 32" in config
    own = {r["own_blocks"] for r in clients if r["accuracy"]}
    if policy == "private-head-fusion":  # adaptive: fusion and head, maybe more
        assert results_dir(flwr_env).parent.name == "private-head-fusion+adaptive"
        assert all({"fusion", "head"} <= set(o.split("+")) for o in own)
    else:
        assert own == {"+".join(sorted(POLICIES[policy])) or "-"}

    # the run wrote its CSVs and ended with the per-modality-set table
    assert len(clients) == 3 * 2
    assert set(modalities.values()) == {"acc", "gyro", "acc+gyro"}
    assert (run / "aggregated_metrics.csv").exists()
    assert (run / "timing.csv").exists()
    table = outcome.output[outcome.output.index("Personalized models after round 2") :]
    for label in ("acc ", "gyro ", "acc+gyro ", "all (weighted)", "all (pooled)"):
        assert label in table
    assert str(results_dir(flwr_env)) in outcome.output


def test_blossom_run_fails_loudly_and_never_installs_per_run(flwr_env):
    """The README's main command, as typed: ``flwr run --stream`` exits 0 when
    the run failed, ``blossom run`` exits 1; and it runs the app in this
    environment whether or not the user switched off Flower's per-run
    dependency installation."""
    env = dict(flwr_env)
    del env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"]
    blossom = Path(sys.executable).parent / "blossom"
    # 2 SuperNodes for a 10-client mix: the ServerApp refuses to start
    command = [blossom, "run", str(APP), "--num-supernodes", "2"]
    command += ["--run-config", "num-server-rounds=1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "num-supernodes=10" in done.stdout  # the fix, from the ServerApp
    assert "ended finished:failed" in done.stderr
    port = env["FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"]
    listing = subprocess.run(
        ["ps", "-ww", "-eo", "args="], capture_output=True, text=True
    )
    [superexec] = [
        line
        for line in listing.stdout.splitlines()
        if "flower-superexec" in line and f"127.0.0.1:{port}" in line
    ]
    assert "--allow-runtime-dependency-installation" not in superexec
