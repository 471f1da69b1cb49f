"""Many simulated clients through a real ``flwr run``: the synthetic fixture's
natural partition (one client per subject), a sampled round and evaluation of
every client, at the size the suite affords (the full sizes: bench/scale.py)."""

from pathlib import Path

import pytest

from blossom_app.benchmarks.synthetic import WINDOWS_PER_SUBJECT, synthetic_dataset
from blossom_app.reporting.csv_files import read_rows
from blossom_app.tools.flwr_runner import run_app

APP = Path(__file__).parents[1]
CLIENTS = 200


@pytest.mark.timeout(600)
def test_two_hundred_clients_train_a_sample_and_all_evaluate(flwr_env, tmp_path):
    data = tmp_path / "synthetic.parquet"
    synthetic_dataset(CLIENTS * WINDOWS_PER_SUBJECT).to_parquet(str(data))

    outcome = run_app(
        APP,
        {
            "dataset": "synthetic",
            "data-source": str(data),
            "partitioner": "natural",
            "modality-mix": "acc=60,gyro=60,acc+gyro=80",
            "num-server-rounds": 2,
            "local-epochs": 1,
            "fraction-train": 0.1,
            "export-onnx": False,
        },
        num_supernodes=CLIENTS,
        env=flwr_env,
        timeout=600,
    )

    assert outcome.ok, outcome.output[-3000:]
    [experiment] = Path(flwr_env["BLOSSOM_RESULTS_DIR"]).glob("synthetic/natural/*/*/*")
    clients = read_rows(experiment / "run_0" / "client_metrics.csv")
    final = [row for row in clients if int(row["round"]) == 2]
    assert len(final) == CLIENTS  # every client evaluated after the last round
    assert len({row["partition_id"] for row in final}) == CLIENTS
    communication = read_rows(experiment / "run_0" / "communication.csv")
    trained = {
        server_round: {
            r["node_id"]
            for r in communication
            if r["phase"] == "train" and r["round"] == server_round
        }
        for server_round in ("1", "2")
    }
    assert [len(nodes) for nodes in trained.values()] == [CLIENTS // 10] * 2
