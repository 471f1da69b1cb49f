"""The same app deployed: a real SuperLink and two real SuperNodes on loopback,
each SuperNode declaring its sensors in --node-config; `flwr run` against it."""

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port, stop_processes_mentioning

from blossom_app.flwr_runner import run_app
from blossom_app.reporting.csv_files import read_rows

APP = Path(__file__).parents[1]


def wait_until_healthy(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"SuperLink exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"SuperLink not healthy within 60 s: {log.read_text()}")


@pytest.fixture
def loopback_federation(flwr_env, tmp_path) -> Iterator[dict[str, str]]:
    """SuperLink + SuperNodes ``acc`` (partition 0) and ``gyro`` (partition 1)."""
    port = free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    tag = f"127.0.0.1:{port}"
    commands = [
        [
            "flower-superlink", "--insecure", "--host", "127.0.0.1",
            "--port", str(port), "--disable-runtime-dependency-installation",
        ],
    ]  # fmt: skip
    for index, modality in enumerate(("acc", "gyro")):
        node_config = (
            f'partition-id={index} num-partitions=2 modalities="{modality}" '
            f'state-dir="{tmp_path / f"state-{modality}"}" num-threads=1'
        )
        commands.append(
            [
                "flower-supernode", "--insecure", "--superlink", tag,
                "--port", str(free_port()), "--node-config", node_config,
            ]
        )  # fmt: skip
    processes = []
    for number, command in enumerate(commands):
        with (logs / f"{number}.log").open("w") as log:
            processes.append(
                subprocess.Popen(command, env=flwr_env, stdout=log, stderr=log)
            )
    wait_until_healthy(port, processes[0], logs / "0.log")
    home = Path(flwr_env["FLWR_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "loopback"\n\n'
        f'[superlink.loopback]\naddress = "{tag}"\ninsecure = true\n'
    )
    yield {**flwr_env, "LOGS": str(logs)}
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    stop_processes_mentioning(tag)


def test_deployed_nodes_train_with_their_node_config_modalities(loopback_federation):
    env = loopback_federation
    outcome = run_app(
        APP,
        {"num-server-rounds": 2, "modality-mix": "acc=1,gyro=1", "batch-size": 64},
        connection="loopback",
        env=env,
        timeout=600,
    )
    logs = "\n".join(p.read_text() for p in sorted(Path(env["LOGS"]).iterdir()))
    assert outcome.ok, outcome.output[-3000:] + logs[-3000:]

    [result] = Path(env["BLOSSOM_RESULTS_DIR"]).glob("watch/iid/acc1_gyro1/*/*")
    clients = read_rows(result / "run_0" / "client_metrics.csv")
    assert {row["modalities"] for row in clients} == {"acc", "gyro"}
    traffic = read_rows(result / "run_0" / "communication.csv")
    up = {(r["partition_id"], r["block"]) for r in traffic if r["direction"] == "up"}
    # private-head-fusion (the default): each device sends its own encoder only
    assert up == {("0", "encoder:acc"), ("1", "encoder:gyro")}
    # each SuperNode also kept its private blocks on disk (state-dir)
    state = Path(env["LOGS"]).parent
    assert list((state / "state-acc").glob("partition-0-acc/*.npz"))
    # ... and, with no export-dir, exported its model under <state-dir>/models:
    # on the device, never to the server's results
    models = {
        row["partition_id"]: row for row in read_rows(result / "run_0/models.csv")
    }
    for partition, modality in (("0", "acc"), ("1", "gyro")):
        folder = (
            state / f"state-{modality}" / "models" / f"partition-{partition}-{modality}"
        )
        assert models[partition]["path"] == str(folder)
        assert (folder / "model.onnx").is_file() and (folder / "model.json").is_file()
    assert not (result / "run_0" / "models").exists()
