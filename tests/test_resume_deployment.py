"""Resume in a deployment: on the secured loopback federation (TLS, registered
SuperNodes with a ``state-dir``, a SuperLink with ``--database``), the
ServerApp is killed mid-run and the SuperLink restarted on the same database;
the SuperNodes reconnect with their registered ids, a ``flwr run`` with
``resume`` completes the experiment, each node has trained every round once,
and the metrics are those of an uninterrupted run of the same config."""

import os
import re
import signal
from pathlib import Path

import pytest
from federation import (
    SECURED_NODES,
    BackgroundRun,
    SecuredFederation,
    trained_rounds,
    wait_for,
)
from resume_helpers import assert_same_metrics, checkpointed_round, experiment_dir

from blossom_app.reporting.csv_files import read_rows
from blossom_app.reporting.layout import experiment_name
from blossom_app.tools.flwr_runner import run_app, run_status

APP = Path(__file__).parents[1]
ROUNDS = 4
KILLED_AFTER = 2  # the round the checkpoint holds when the ServerApp is killed
CONFIG = {  # named in full: the app's defaults may change (DECISIONS 26)
    "aggregation": "private-head-fusion",
    "personalization": "fixed",
    "server-optimizer": "fedavg",
    "transport": "fp16",
    "client-optimizer": "sgd",
    "learning-rate": 0.05,
    "fraction-train": 1.0,
    "num-server-rounds": ROUNDS,
    "local-epochs": 1,
    "batch-size": 64,
    "modality-mix": "acc=1,gyro=1",
    "export-onnx": False,
    "evaluate-every": 1,
    "round-timeout": 60.0,
    "checkpoint-every": 1,
    "seed": 7,
}


def log_text(path: Path) -> str:
    """A log without its colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", path.read_text())


@pytest.mark.timeout(600)
def test_a_killed_serverapp_and_restarted_superlink_resume_to_the_same_metrics(
    flwr_env, tmp_path
):
    with SecuredFederation(flwr_env, tmp_path, stranger=False) as federation:
        env, logs = federation.env, federation.logs
        registered = {ids[0]: name for name, ids in federation.registered.items()}
        results = federation.server / "results"  # the unit's BLOSSOM_RESULTS_DIR

        def log_tails() -> str:
            return "\n".join(p.read_text()[-2000:] for p in sorted(logs.iterdir()))

        # the reference: the same config, uninterrupted
        reference = run_app(APP, CONFIG, connection="blossom", env=env, timeout=300)
        assert reference.ok, reference.output[-3000:] + log_tails()
        reference_dir = experiment_dir(results)

        # the interrupted run: its ServerApp killed once round 2 is checkpointed
        interrupted = BackgroundRun(
            APP, CONFIG, connection="blossom", env=env, timeout=300
        )
        wait_for(
            lambda: experiment_dir(results) not in (None, reference_dir),
            "the second experiment",
        )
        experiment = experiment_dir(results)  # the newest
        wait_for(
            lambda: checkpointed_round(experiment) >= KILLED_AFTER,
            f"the checkpoint of round {KILLED_AFTER}",
        )
        [(pid, command)] = federation.serverapps().items()
        print("The ServerApp:", pid, command.split(" --token")[0])
        os.kill(pid, signal.SIGKILL)
        assert checkpointed_round(experiment) == KILLED_AFTER  # killed mid-run
        logged = {name: len(log_text(logs / f"{name}.log")) for name in SECURED_NODES}
        federation.restart_superlink()
        cut_short = interrupted.outcome(timeout=120)
        assert cut_short.run_id is not None and not cut_short.ok, cut_short.status
        # The restarted SuperLink ends the killed run once its ServerApp has
        # missed its heartbeats (about 60 s after the kill). Until then each
        # node keeps pulling the round-3 message of the killed run it had
        # received and takes no other: a resume started earlier gets its
        # profile replies only just within its round-timeout.
        wait_for(
            lambda: run_status(cut_short.run_id, env).startswith("finished"),
            "the killed run to be finished",
            timeout=180,
            interval=3,  # each look is a `flwr ls`
        )
        print("The killed run:", run_status(cut_short.run_id, env))
        # the SuperNodes reconnected by themselves, with their registered ids
        for name, offset in logged.items():
            wait_for(
                lambda name=name, offset=offset: (
                    "Connection successful after"
                    in log_text(logs / f"{name}.log")[offset:]
                ),
                f"{name} to reconnect",
                timeout=60,
            )
        assert federation.node_statuses() == dict.fromkeys(registered, "online")

        resumed = run_app(
            APP,
            {**CONFIG, "resume": str(experiment)},
            connection="blossom",
            env=env,
            timeout=300,
        )
        (logs / "resumed-flwr-run.log").write_text(resumed.output)
        assert resumed.ok, resumed.output[-3000:] + log_tails()

    # the resumed ServerApp went on from the checkpoint (run.log: both parts)
    run_log = (experiment / "run.log").read_text()
    assert f"at round {KILLED_AFTER + 1} of {ROUNDS}:" in run_log, run_log
    # every round trained once on each node: the resumed rounds started from
    # the private state the checkpointed round left
    for name in SECURED_NODES:
        state_dir = federation.state_dir(name)
        assert trained_rounds(state_dir, experiment_name(experiment)) == ROUNDS, name
        assert trained_rounds(state_dir, experiment_name(reference_dir)) == ROUNDS
    # the resumed rounds ran on the registered node ids, each on its partition
    clients = read_rows(experiment / "run_0" / "client_metrics.csv")
    assert {r["round"] for r in clients} == {str(n) for n in range(1, ROUNDS + 1)}
    for row in clients:
        name = registered[row["node_id"]]
        assert int(row["partition_id"]) == SECURED_NODES[name][1], row
    # the same metrics as the uninterrupted run, value for value
    assert_same_metrics(experiment / "run_0", reference_dir / "run_0")
    assert (experiment / "aggregated_metrics.csv").is_file()  # complete
