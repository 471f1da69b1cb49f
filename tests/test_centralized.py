"""The centralized baseline on real data, written where `blossom compare` finds it."""

from rounds import DEFAULTS

from blossom_app.client.local_client import LocalClient
from blossom_app.common.config import ExperimentConfig
from blossom_app.reporting.csv_files import number, read_rows
from blossom_app.reporting.summary import final_table
from blossom_app.tools.centralized import run_centralized
from blossom_app.tools.cli import main


def test_centralized_baseline_evaluates_every_client_on_its_own_test_split(tmp_path):
    from flwr.app import Context, RecordDict

    run_config = {
        **DEFAULTS,
        "num-server-rounds": 1,
        "local-epochs": 1,
        "modality-mix": "1-1-1",
        "batch-size": 64,
        "results-dir": str(tmp_path),
    }
    path = run_centralized(ExperimentConfig.from_run_config(run_config), run_config)

    assert path.parent == tmp_path / "watch" / "iid" / "1-1-1" / "centralized"
    clients = read_rows(path / "run_0" / "client_metrics.csv")
    for row in clients:  # the same test split the federated client is scored on
        node = {"partition-id": int(row["partition_id"]), "num-partitions": 3}
        client = LocalClient.from_context(Context(1, 1, node, RecordDict(), run_config))
        assert int(row["test_examples"]) == len(client.data.test)
        assert row["modalities"] == "+".join(client.setup.modalities)
    [final] = read_rows(path / "aggregated_metrics.csv")
    assert 0.0 < number(final["weighted_accuracy_mean"]) <= 1.0

    assert final_table(path).startswith("Models after round 1 (")

    assert main(["compare", str(tmp_path)]) == 0
    [row] = read_rows(tmp_path / "watch" / "iid" / "comparison" / "comparison.csv")
    assert row["policy"] == "centralized"
