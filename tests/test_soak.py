"""One SuperLink (TLS, node authentication, ``--database``) serving more
SuperNodes than the other deployment tests, at the size the suite affords (the
full size: bench/soak.py): a short run completes, and a node that joins while
the run goes on is profiled and trains from a later round."""

from pathlib import Path

import pytest
from federation import BackgroundRun, SecuredFederation, trained_rounds, wait_for

from blossom_app.reporting.csv_files import read_rows

APP = Path(__file__).parents[1]
EXTRA = {"node-2": "acc+gyro", "node-3": "acc"}
LATE = {"late-0": "acc+gyro"}
CONFIG = {
    "modality-mix": "acc=2,gyro=1,acc+gyro=1",  # the nodes there at the start
    "num-server-rounds": 3,
    "local-epochs": 1,
    "batch-size": 64,
    "evaluate-every": 3,
    "export-onnx": False,
}


@pytest.mark.timeout(900)
def test_a_secured_fleet_runs_and_a_late_node_takes_part(flwr_env, tmp_path):
    with SecuredFederation(
        flwr_env, tmp_path, stranger=False, extra=EXTRA, late=LATE
    ) as federation:
        run = BackgroundRun(
            APP, CONFIG, connection="blossom", env=federation.env, timeout=600
        )
        first = [n for n in federation.layout if n not in LATE]
        wait_for(
            lambda: all(trained_rounds(federation.state_dir(n)) >= 1 for n in first),
            "round 1 on every node",
            timeout=400,
        )
        federation.start_late("late-0")
        outcome = run.outcome()
        logs = "\n".join(p.read_text()[-1500:] for p in federation.logs.iterdir())
        assert outcome.ok, outcome.output[-3000:] + logs

    [experiment] = (federation.server / "results").glob("watch/iid/*/*/*")
    rows = read_rows(experiment / "run_0" / "client_metrics.csv")
    late = federation.layout["late-0"][1]
    trained = {
        int(r["round"])
        for r in rows
        if int(r["partition_id"]) == late and r["train_loss"]
    }
    assert trained and min(trained) >= 2  # profiled when it came, then trained
    for name in first:  # every first node trained every round
        partition = federation.layout[name][1]
        assert {
            int(r["round"])
            for r in rows
            if int(r["partition_id"]) == partition and r["train_loss"]
        } == {1, 2, 3}
