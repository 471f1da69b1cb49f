"""The same app deployed: a real SuperLink and two real SuperNodes on loopback,
each SuperNode declaring its sensors in --node-config; `flwr run` against it."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port
from federation import LoopbackFederation

from blossom_app.reporting.csv_files import read_rows
from blossom_app.tools.flwr_runner import run_app

APP = Path(__file__).parents[1]


@pytest.fixture
def loopback_federation(flwr_env, tmp_path) -> Iterator[LoopbackFederation]:
    """SuperLink + SuperNodes ``acc`` (partition 0) and ``gyro`` (partition 1)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    federation = LoopbackFederation(flwr_env, logs, free_port())
    for index, modality in enumerate(("acc", "gyro")):
        node_config = (
            f'partition-id={index} num-partitions=2 modalities="{modality}" '
            f'state-dir="{tmp_path / f"state-{modality}"}" num-threads=1'
        )
        federation.add_node(modality, node_config, free_port())
    yield federation
    federation.close()


def test_deployed_nodes_train_with_their_node_config_modalities(loopback_federation):
    federation = loopback_federation
    env = federation.env
    outcome = run_app(
        APP,
        {
            "num-server-rounds": 2,
            "local-epochs": 1,
            "modality-mix": "acc=1,gyro=1",
            "batch-size": 64,
        },
        connection="loopback",
        env=env,
        timeout=600,
    )
    assert outcome.ok, outcome.output[-3000:] + federation.log_text()[-3000:]

    [result] = Path(env["BLOSSOM_RESULTS_DIR"]).glob("watch/iid/acc1_gyro1/*/*")
    clients = read_rows(result / "run_0" / "client_metrics.csv")
    assert {row["modalities"] for row in clients} == {"acc", "gyro"}
    traffic = read_rows(result / "run_0" / "communication.csv")
    up = {(r["partition_id"], r["block"]) for r in traffic if r["direction"] == "up"}
    # full-model + adaptive (the default): each device sends the blocks it holds,
    # never its input normalization
    assert up == {
        (partition, block)
        for partition, encoder in (("0", "encoder:acc"), ("1", "encoder:gyro"))
        for block in (encoder, "fusion", "head")
    }
    # each SuperNode also kept its private state on disk (state-dir): its
    # normalization and its own version of each block
    state = federation.logs.parent
    assert list((state / "state-acc").glob("partition-0-acc/*/run-0/round-*.npz"))
    # ... and, with no export-dir, exported its model under <state-dir>/models:
    # on the device, never to the server's results
    models = {r["partition_id"]: r for r in read_rows(result / "run_0/models.csv")}
    for partition, modality in (("0", "acc"), ("1", "gyro")):
        folder = (
            state / f"state-{modality}" / "models" / f"partition-{partition}-{modality}"
        )
        assert models[partition]["path"] == str(folder)
        assert (folder / "model.onnx").is_file() and (folder / "model.json").is_file()
    assert not (result / "run_0" / "models").exists()
