"""A real fleet loses nodes: on loopback, a SuperNode stopped between rounds and
started again keeps its personalization (state-dir), and a SuperNode killed
mid-run and never restarted does not sink the run."""

import signal
from pathlib import Path

from conftest import free_port
from federation import (
    BackgroundRun,
    LoopbackFederation,
    state_saved_at,
    trained_rounds,
    wait_for,
)

from blossom_app.reporting.csv_files import read_rows

APP = Path(__file__).parents[1]
ROUND_TIMEOUT = 50.0  # round 1 loads data in fresh processes: 25-40 s on 2 cores
NODES = {"acc": 0, "gyro": 1, "acc+gyro": 2}


def test_a_restarted_node_continues_and_a_dead_one_does_not_sink_the_run(
    flwr_env, tmp_path
):
    logs = tmp_path / "logs"
    logs.mkdir()
    federation = LoopbackFederation(flwr_env, logs, free_port())
    state = {name: tmp_path / f"state-{name}" for name in NODES}

    def node_config(name: str) -> str:
        modalities = name.replace("+", ",")
        return (
            f'partition-id={NODES[name]} num-partitions=3 modalities="{modalities}" '
            f'state-dir="{state[name]}" num-threads=1'
        )

    try:
        for name in NODES:
            federation.add_node(name, node_config(name), free_port())
        run = BackgroundRun(
            APP,
            {
                "num-server-rounds": 3,
                "local-epochs": 1,
                "evaluate-every": 3,
                "modality-mix": "acc=1,gyro=1,acc+gyro=1",
                "batch-size": 64,
                "round-timeout": ROUND_TIMEOUT,
                "export-onnx": False,
            },
            connection="loopback",
            env=federation.env,
            timeout=600,
        )
        # round 1 trained everywhere; when round 2 reaches the nodes, the gyro
        # node crashes for good and the acc node is stopped and started again
        # (an insecure SuperNode gets a new node id: the server profiles it
        # and it joins). Not earlier: Flower's ServerApp waits up to its
        # object-push session (180 s), whatever round-timeout says, for a reply
        # a node began to upload.
        wait_for(lambda: all(trained_rounds(state[n]) >= 1 for n in NODES), "round 1")
        # A ClientApp that started after gyro saved its round-1 state runs
        # round 2: the one that saved may still be sending its reply.
        round_1_saved = state_saved_at(state["gyro"])
        wait_for(
            lambda: any(t > round_1_saved for t in federation.clientapp_starts("gyro")),
            "round 2 on gyro",
        )
        federation.kill("gyro", signal.SIGKILL)
        federation.kill("acc", signal.SIGTERM)
        before_restart = trained_rounds(state["acc"])
        federation.add_node("acc", node_config("acc"), free_port())
        outcome = run.outcome()
        assert outcome.ok, outcome.output[-3000:] + federation.log_text()[-3000:]
    finally:
        federation.close()

    [result] = Path(flwr_env["BLOSSOM_RESULTS_DIR"]).glob("watch/iid/*/*/*")
    run_dir = result / "run_0"
    clients = read_rows(run_dir / "client_metrics.csv")
    trained = [row for row in clients if row["train_loss"]]

    rejections = read_rows(run_dir / "rejections.csv")

    # the restarted acc node (a new node id) trained on from its saved private
    # blocks: its count went on from where the stopped process left it
    [new_id] = {
        r["node_id"] for r in trained if (r["round"], r["partition_id"]) == ("3", "0")
    }
    seen = {r["node_id"] for r in [*trained, *rejections] if r["partition_id"] == "0"}
    assert len(seen) == 2 and new_id in seen  # the stopped process and the new one
    after = [row for row in trained if row["node_id"] == new_id]
    assert before_restart >= 1
    assert trained_rounds(state["acc"]) == before_restart + len(after)

    # the dead gyro node is missing from later rounds, recorded with its id,
    # and no round waited for it longer than round-timeout
    missing = [r for r in rejections if r["partition_id"] == "1"]
    assert {r["round"] for r in missing if r["phase"] == "train"} >= {"2", "3"}
    assert len({r["node_id"] for r in missing}) == 1
    assert not [r for r in trained if r["partition_id"] == "1" and r["round"] != "1"]
    for row in read_rows(run_dir / "timing.csv"):
        for phase in ("train_seconds", "evaluate_seconds"):
            if row.get(phase):
                assert float(row[phase]) < ROUND_TIMEOUT + 10, row
    # the last round was evaluated by the nodes still there
    final = [r for r in clients if r["round"] == "3" and r["accuracy"]]
    assert {r["partition_id"] for r in final} == {"0", "2"}
