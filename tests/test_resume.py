"""A run survives losing its server: real `flwr run` simulations killed with
SIGKILL (the whole Flower process tree) at several moments, then resumed from
their checkpoint; the resumed run's metrics equal an uninterrupted run's value
for value per round and partition. Each kill leaves files that all parse.

The configs are named in full (not the app's defaults, which the learning
issue may change): the default policy, `full-model` with FedAdam (two runs,
killed in the second), and `full-model` with adaptive personalization.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from resume_helpers import (
    APP,
    CREATED,
    RENAMED_IN,
    KillableSimulation,
    KillOnCreate,
    assert_same_metrics,
    checkpointed_round,
    every_file_parses,
    experiment_dir,
)

from blossom_app.reporting.csv_files import read_rows
from blossom_app.tools.flwr_runner import run_app

SMALL = {
    "dataset": "watch",
    "partitioner": "iid",
    "modality-mix": "1-1-1",
    "num-server-rounds": 6,
    "local-epochs": 1,
    "batch-size": 64,
    "learning-rate": 0.05,
    "client-optimizer": "sgd",
    "fraction-train": 1.0,
    "evaluate-every": 1,
    "transport": "fp16",
    "seed": 42,
    "num-runs": 1,
    "checkpoint-every": 1,
    "export-onnx": False,
    "server-optimizer": "fedavg",
    "personalization": "fixed",
}
CONFIGS = {
    "private-head-fusion": {"aggregation": "private-head-fusion"},
    "full-model-fedadam": {
        "aggregation": "full-model",
        "server-optimizer": "fedadam",
        "num-runs": 2,
    },
    "full-model-adaptive": {"aggregation": "full-model", "personalization": "adaptive"},
}
NODES = 3
BLOSSOM = str(Path(sys.executable).parent / "blossom")  # the installed command


def run_to_the_end(config: dict, env: dict) -> None:
    """A `flwr run` of ``config`` that must complete."""
    outcome = run_app(APP, config, num_supernodes=NODES, env=env, timeout=600)
    assert outcome.ok, outcome.output[-3000:]


def reference(config: dict, env: dict) -> Path:
    """An uninterrupted run of ``config``: its experiment directory (beside
    the results root; set in the run config, since the managed SuperLink
    keeps the environment it started with)."""
    root = Path(env["BLOSSOM_RESULTS_DIR"] + "-reference")
    run_to_the_end({**config, "results-dir": str(root)}, env)
    return experiment_dir(root)


def resume(experiment, config: dict, env: dict) -> None:
    run_to_the_end({**config, "resume": str(experiment)}, env)


def node_state_dirs(experiment, run_index: int) -> list:
    """Each simulated node's folder of private state for ``run_index``."""
    return sorted((experiment / "node-state").glob(f"partition-*/*/run-{run_index}"))


@pytest.mark.timeout(900)
def test_killed_after_a_checkpoint_and_while_exporting_resumes_to_the_same_metrics(
    flwr_env,
):
    """Killed just after round 3's checkpoint, resumed, killed again while the
    nodes export their models, resumed with `blossom run --resume`."""
    config = {**SMALL, **CONFIGS["private-head-fusion"]}
    expected = reference(config, flwr_env)
    results = Path(flwr_env["BLOSSOM_RESULTS_DIR"])
    killed = {**config, "export-onnx": True}

    run = KillableSimulation(killed, flwr_env, NODES)
    run.wait_for(lambda: checkpointed_round(experiment_dir(results)) >= 3, "round 3")
    run.kill()
    experiment = experiment_dir(results)
    assert checkpointed_round(experiment) == 3
    assert every_file_parses(experiment) == []

    run = KillableSimulation({**killed, "resume": str(experiment)}, flwr_env, NODES)
    models = experiment / "run_0" / "models"
    run.wait_for(models.is_dir, "the export round")
    run.kill()
    assert checkpointed_round(experiment) == 6
    every_file_parses(experiment)
    assert not (experiment / "aggregated_metrics.csv").exists()  # not finished

    finished = subprocess.run(
        [BLOSSOM, "run", str(APP),
         "--resume", str(experiment)],
        env=flwr_env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr
    assert f"Resuming {experiment}: run 0, after round 6" in finished.stdout
    assert every_file_parses(experiment) == []
    assert_same_metrics(experiment / "run_0", expected / "run_0")
    exported = read_rows(experiment / "run_0" / "models.csv")
    assert sorted(r["partition_id"] for r in exported) == ["0", "1", "2"]
    assert {r["status"] for r in exported} == {"written"}
    # one row per round, once: nothing recorded twice by the resumed runs
    rounds = [r["round"] for r in read_rows(experiment / "run_0" / "timing.csv")]
    assert rounds == [str(r) for r in range(1, 7)]
    # a finished experiment is not run again: said so, exit 0, nothing trained
    again = subprocess.run(
        [BLOSSOM, "run", str(APP),
         "--resume", str(experiment)],
        env=flwr_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert again.returncode == 0 and "finished already" in again.stdout


@pytest.mark.timeout(900)
def test_killed_after_nodes_saved_the_next_round_resumes_at_its_run_index(flwr_env):
    """Two runs; killed in the second (run index 1) the moment a node has saved
    its private state of round 4, while the server's checkpoint holds round
    3: the node trains round 4 again from its state after round 3."""
    config = {**SMALL, **CONFIGS["full-model-fedadam"]}
    expected = reference(config, flwr_env)
    results = Path(flwr_env["BLOSSOM_RESULTS_DIR"])

    run = KillableSimulation(config, flwr_env, NODES)

    def in_run_1_round_3() -> bool:
        experiment = experiment_dir(results)
        return experiment is not None and len(node_state_dirs(experiment, 1)) == NODES

    run.wait_for(in_run_1_round_3, "run 1")
    experiment = experiment_dir(results)
    run.wait_for(lambda: checkpointed_round(experiment) == 3, "run 1's round 3")
    watch = KillOnCreate(
        node_state_dirs(experiment, 1), "round-4.npz", run.server_pid(), RENAMED_IN
    )
    run.wait_for(watch.fired.is_set, "a node's round-4 state")
    watch.close()
    run.kill()
    assert checkpointed_round(experiment) == 3
    saved = [d for d in node_state_dirs(experiment, 1) if (d / "round-4.npz").exists()]
    assert saved, "no node had saved round 4 when the server died"
    assert (experiment / "run_0" / "aggregated_metrics.csv").is_file()
    assert every_file_parses(experiment) == []

    resume(experiment, config, flwr_env)
    for run_index in (0, 1):
        assert_same_metrics(
            experiment / f"run_{run_index}", expected / f"run_{run_index}"
        )
    # the state on disk stays bounded: two rounds per client, one run
    for folder in node_state_dirs(experiment, 1):
        assert sorted(p.name for p in folder.iterdir()) == [
            "round-5.npz",
            "round-6.npz",
        ]
    assert node_state_dirs(experiment, 0) == []


@pytest.mark.timeout(900)
def test_killed_while_writing_a_checkpoint_resumes_from_the_one_before(flwr_env):
    """Killed while round 4's checkpoint is being written: the checkpoint of
    round 3 is whole, the half-written one is a leftover nothing reads."""
    config = {**SMALL, **CONFIGS["full-model-adaptive"]}
    expected = reference(config, flwr_env)
    results = Path(flwr_env["BLOSSOM_RESULTS_DIR"])

    run = KillableSimulation(config, flwr_env, NODES)
    run.wait_for(lambda: checkpointed_round(experiment_dir(results)) == 3, "round 3")
    experiment = experiment_dir(results)
    watch = KillOnCreate([experiment], ".checkpoint.npz.", run.server_pid(), CREATED)
    run.wait_for(watch.fired.is_set, "round 4's checkpoint")
    watch.close()
    run.kill()
    assert checkpointed_round(experiment) == 3
    [leftover] = every_file_parses(experiment)
    assert leftover.name.startswith(".checkpoint.npz.")

    resume(experiment, config, flwr_env)
    assert_same_metrics(experiment / "run_0", expected / "run_0")
