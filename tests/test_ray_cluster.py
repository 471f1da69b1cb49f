"""The simulation on a Ray cluster: a head and a second node started with
``ray start`` on loopback (1 CPU each), a real ``flwr run`` joining it through
``RAY_ADDRESS``, ClientApp actors placed on both nodes (Ray's state API), and
the same metrics, value for value, as a single-node run of the same seed."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import free_port, stop_processes_mentioning

from blossom_app.reporting.csv_files import read_rows
from blossom_app.tools.flwr_runner import run_app

APP = Path(__file__).parents[1]
RUN_CONFIG = {
    "modality-mix": "acc=1,gyro=1,acc+gyro=2",
    "num-server-rounds": 2,
    "local-epochs": 1,
    "export-onnx": False,
}
#: Per client and round: what must not depend on where a client ran.
COMPARED = ("round", "partition_id", "train_loss", "test_loss", "accuracy", "macro_f1")


def ray(*arguments: str, env: dict[str, str]) -> None:
    subprocess.run(
        ["ray", *arguments], env=env, check=True, capture_output=True, timeout=120
    )


@contextmanager
def ray_cluster() -> Iterator[tuple[str, str]]:
    """``(address, dashboard)`` of a two-node Ray cluster on loopback; every
    process of it is stopped afterwards, whatever happens."""
    # a short directory: Ray's socket paths must stay under 108 characters
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    port, dashboard = free_port(), free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus=1", "--disable-usage-stats"]
    try:
        ray(
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            f"--dashboard-port={dashboard}",
            f"--temp-dir={temp}",
            *common,
            env=env,
        )
        ray(
            "start",
            "--node-ip-address=127.0.0.1",
            f"--address=127.0.0.1:{port}",
            *common,
            env=env,
        )
        yield f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}"
    finally:
        stop_processes_mentioning(temp)
        stop_processes_mentioning(f"127.0.0.1:{port}")
        shutil.rmtree(temp, ignore_errors=True)


def client_rows(results: Path) -> list[tuple]:
    [experiment] = results.glob("watch/iid/*/*/*")
    rows = read_rows(experiment / "run_0" / "client_metrics.csv")
    return sorted(tuple(row[key] for key in COMPARED) for row in rows)


@pytest.mark.timeout(600)
def test_a_two_node_ray_cluster_runs_the_simulation_as_one_node_does(
    flwr_env, tmp_path
):
    from ray.util.state import list_actors, list_nodes

    # first alone: while a cluster runs, ray.init() on this machine joins it
    alone = run_app(APP, RUN_CONFIG, num_supernodes=4, env=flwr_env, timeout=600)
    assert alone.ok, alone.output[-3000:]
    results = Path(flwr_env["BLOSSOM_RESULTS_DIR"])
    single = client_rows(results)
    shutil.rmtree(results)

    cluster = {
        **flwr_env,
        "FLWR_HOME": str(tmp_path / "flwr-home-cluster"),
        "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(free_port()),
        "FLWR_LOCAL_CONTROL_API_PORT": str(free_port()),
    }
    with ray_cluster() as (address, dashboard):
        try:
            # set before the managed SuperLink starts: it keeps its environment
            cluster["RAY_ADDRESS"] = address
            joined = run_app(
                APP, RUN_CONFIG, num_supernodes=4, env=cluster, timeout=600
            )
            assert joined.ok, joined.output[-3000:]
            nodes = {node.node_id for node in list_nodes(address=dashboard)}
            actors = list_actors(
                address=dashboard,
                filters=[("class_name", "=", "ClientAppActor")],
                detail=True,
            )
        finally:
            stop_processes_mentioning(cluster["FLWR_HOME"])

    assert len(nodes) == 2
    assert {actor.node_id for actor in actors} == nodes  # actors on both nodes
    assert client_rows(results) == single
