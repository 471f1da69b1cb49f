"""Helpers for the results tests: a check that a PNG holds a real drawing, and
hand-made results trees with values chosen so that averages are known.

Each run has two clients: ``acc`` (100 test, 200 train examples) and ``gyro``
(300 test, 600 train examples). For a run whose final accuracy is ``v``, the
``acc`` client scores ``v - 0.3`` and ``gyro`` ``v + 0.1``, so the
example-weighted accuracy is exactly ``v``; macro-F1 is accuracy - 0.05 per
client, pooled macro-F1 is ``v - 0.02``, losses are ``1 - accuracy``. Earlier
rounds scale ``v`` by ``round / rounds``.
"""

from pathlib import Path

import numpy as np
from matplotlib.image import imread

from blossom_app.reporting.csv_files import write_rows
from blossom_app.reporting.layout import cell_dir
from blossom_app.reporting.output import write_config

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_readable_png(path: Path) -> None:
    """A real PNG with a drawing in it: signature, size, many distinct colours."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    assert path.stat().st_size > 10_000, path
    pixels = imread(path)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 500, path
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
    assert len(colours) > 50, path


CLIENTS = (("acc", 0, 100, 200, -0.3), ("gyro", 1, 300, 600, 0.1))


def run_tables(final: float, rounds: int) -> tuple[list[dict], list[dict]]:
    """(aggregated rows, client rows) of one hand-made run."""
    aggregated, clients = [], []
    for rnd in range(1, rounds + 1):
        v = final * rnd / rounds
        for modalities, partition, test, train, offset in CLIENTS:
            clients.append(
                {
                    "round": rnd,
                    "partition_id": partition,
                    "node_id": 1000 + partition,
                    "modalities": modalities,
                    "train_examples": train,
                    "train_loss": 1 - (v + offset),
                    "train_seconds": 0.5,
                    "test_examples": test,
                    "test_loss": 1 - (v + offset),
                    "accuracy": v + offset,
                    "macro_f1": v + offset - 0.05,
                }
            )
        aggregated.append(
            {
                "round": rnd,
                "train_loss": 1 - v,
                "train_examples": 800,
                "train_clients": 2,
                "test_examples": 400,
                "test_clients": 2,
                "test_loss": 1 - v,
                "weighted_accuracy": v,
                "weighted_macro_f1": v - 0.05,
                "pooled_accuracy": v,
                "pooled_macro_f1": v - 0.02,
            }
        )
    return aggregated, clients


def make_experiment(
    root: Path,
    mix: str,
    policy: str,
    finals: list[float],
    rounds: int = 3,
    stamp: str = "20260101-000000-000000",
    bytes_per_round: int = 2_000_000,
    config: dict | None = None,
) -> Path:
    """An experiment directory with one ``run_<k>/`` per value of ``finals``
    (the run's final weighted accuracy); the top-level files are not written."""
    path = cell_dir(root, "watch", "iid", mix, policy) / stamp
    path.mkdir(parents=True)
    run_config = {
        "dataset": "watch",
        "partitioner": "iid",
        "modality-mix": mix,
        "aggregation": policy,
        "num-server-rounds": rounds,
        "num-runs": len(finals),
        **(config or {}),
    }
    write_config(path / "config.toml", run_config)
    for k, final in enumerate(finals):
        run = path / f"run_{k}"
        run.mkdir()
        aggregated, clients = run_tables(final, rounds)
        write_rows(run / "aggregated_metrics.csv", aggregated)
        write_rows(run / "client_metrics.csv", clients)
        write_rows(
            run / "communication.csv",
            (
                {
                    "round": rnd,
                    "node_id": 1000 + partition,
                    "partition_id": partition,
                    "phase": "train",
                    "direction": direction,
                    "block": "head",
                    "bytes": bytes_per_round // 4,
                }
                for rnd in range(1, rounds + 1)
                for partition in (0, 1)
                for direction in ("down", "up")
            ),
        )
    return path
