"""Results people can read: CSVs, across-run averages and plots.

Hand-made trees (see results_helpers.py) check the arithmetic; one real `flwr run`
checks that the CSVs carry what the run reported.
"""

import math
import re
from pathlib import Path

import numpy as np
import pytest
from results_helpers import assert_readable_png, make_experiment

from blossom_app.reporting.averaging import average_experiment, mean_std, weighted_means
from blossom_app.reporting.csv_files import number, read_rows
from blossom_app.reporting.layout import find_experiments, is_complete
from blossom_app.reporting.output import complete_experiment
from blossom_app.reporting.plots import plot_run
from blossom_app.tools.flwr_runner import run_app

APP = Path(__file__).parents[1]


def test_mean_and_sample_std():
    assert mean_std([0.5, 0.7]) == pytest.approx((0.6, math.sqrt(0.02)))
    assert mean_std([1.0, 2.0, 3.0, math.nan]) == pytest.approx((2.0, 1.0))
    mean, std = mean_std([0.4])
    assert mean == 0.4 and math.isnan(std)
    assert all(math.isnan(v) for v in mean_std([]))


def test_weighted_means_per_modality_set_by_hand():
    rows = [
        {
            "round": 1,
            "modalities": "acc",
            "train_examples": 1,
            "train_loss": 1.0,
            "test_examples": 3,
            "test_loss": 2.0,
            "accuracy": 0.2,
            "macro_f1": 0.1,
        },
        {
            "round": 1,
            "modalities": "acc",
            "train_examples": 3,
            "train_loss": 3.0,
            "test_examples": 1,
            "test_loss": 6.0,
            "accuracy": 0.6,
            "macro_f1": 0.5,
        },
        # trained but not evaluated this round: only its train loss counts
        {
            "round": 1,
            "modalities": "gyro",
            "train_examples": 2,
            "train_loss": 0.5,
            "test_examples": "",
            "test_loss": "",
            "accuracy": "",
            "macro_f1": "",
        },
    ]
    acc, gyro = weighted_means(rows, ["round", "modalities"])
    assert acc["clients"] == 2
    assert acc["train_loss"] == pytest.approx((1 * 1.0 + 3 * 3.0) / 4)
    assert acc["test_loss"] == pytest.approx((3 * 2.0 + 1 * 6.0) / 4)
    assert acc["accuracy"] == pytest.approx((3 * 0.2 + 1 * 0.6) / 4)
    assert acc["macro_f1"] == pytest.approx((3 * 0.1 + 1 * 0.5) / 4)
    assert gyro["train_loss"] == 0.5 and math.isnan(gyro["accuracy"])


def test_averages_over_runs_by_hand(tmp_path):
    experiment = make_experiment(tmp_path, "1-1-0", "full-model", [0.5, 0.7], rounds=2)
    aggregated, by_modality = average_experiment(experiment)

    assert [row["round"] for row in aggregated] == ["1", "2"]
    final = aggregated[-1]
    assert final["runs"] == 2
    assert final["weighted_accuracy_mean"] == pytest.approx(0.6)
    assert final["weighted_accuracy_std"] == pytest.approx(math.sqrt(0.02))
    assert final["pooled_macro_f1_mean"] == pytest.approx(0.58)
    assert final["test_examples_mean"] == 400 and final["test_examples_std"] == 0
    # round 1 scales each run's value by 1/2: runs 0.25 and 0.35
    assert aggregated[0]["weighted_accuracy_mean"] == pytest.approx(0.3)
    assert aggregated[0]["weighted_accuracy_std"] == pytest.approx(math.sqrt(0.005))

    acc = next(r for r in by_modality if r["round"] == "2" and r["modalities"] == "acc")
    assert acc["accuracy_mean"] == pytest.approx(0.6 - 0.3)  # clients: 0.2, 0.4
    assert acc["accuracy_std"] == pytest.approx(math.sqrt(0.02))
    assert acc["clients_mean"] == 1


def test_completed_experiment_has_averages_marker_and_readable_plots(tmp_path):
    experiment = make_experiment(tmp_path, "1-1-0", "private-head", [0.6], rounds=4)
    assert not is_complete(experiment)
    assert find_experiments([tmp_path]) == ([], [experiment])

    complete_experiment(experiment)

    assert is_complete(experiment)
    assert find_experiments([tmp_path]) == ([experiment], [])
    averaged = read_rows(experiment / "aggregated_metrics.csv")
    assert number(averaged[-1]["weighted_accuracy_mean"]) == pytest.approx(0.6)
    assert averaged[-1]["weighted_accuracy_std"] == ""  # one run: no spread
    assert {p.name for p in experiment.glob("*.png")} == {
        "averaged_accuracy.png",
        "averaged_macro_f1.png",
        "averaged_loss.png",
        "modality_wise_accuracy.png",
        "modality_wise_macro_f1.png",
        "modality_wise_test_loss.png",
        "modality_wise_train_loss.png",
    }
    assert {p.name for p in (experiment / "run_0").glob("*.png")} == {
        "aggregated_accuracy.png",
        "aggregated_macro_f1.png",
        "aggregated_loss.png",
        "client_wise_accuracy.png",
        "client_wise_macro_f1.png",
        "client_wise_test_loss.png",
        "client_wise_train_loss.png",
    }
    for path in experiment.rglob("*.png"):
        assert_readable_png(path)


def weighted(rows: list[dict[str, str]], metric: str, weight: str) -> float:
    return sum(number(r[metric]) * number(r[weight]) for r in rows) / sum(
        number(r[weight]) for r in rows
    )


def test_real_run_csvs_carry_what_the_run_reported(flwr_env):
    outcome = run_app(
        APP,
        {
            "num-server-rounds": 2,
            "local-epochs": 1,
            "num-runs": 2,
            "modality-mix": "1-1-1",
            "batch-size": 32,
            "aggregation": "private-head",
            "personalization": "fixed",
            "export-onnx": False,
        },
        num_supernodes=3,
        env=flwr_env,
        timeout=600,
    )
    assert outcome.ok, outcome.output[-3000:]
    [experiment] = Path(flwr_env["BLOSSOM_RESULTS_DIR"]).glob(
        "watch/iid/1-1-1/private-head/*"
    )
    # the absolute path is logged at the start and at the end
    assert len(re.findall(re.escape(str(experiment)), outcome.output)) >= 2
    assert is_complete(experiment)
    assert (experiment / "config.toml").is_file() and (experiment / "run.log").is_file()

    per_run = []
    for k in (0, 1):
        run = experiment / f"run_{k}"
        aggregated = read_rows(run / "aggregated_metrics.csv")
        clients = read_rows(run / "client_metrics.csv")
        per_run.append(aggregated)
        assert [r["round"] for r in aggregated] == ["1", "2"]
        assert len(clients) == 3 * 2
        assert {r["modalities"] for r in clients} == {"acc", "gyro", "acc+gyro"}
        for row in aggregated:
            own = [r for r in clients if r["round"] == row["round"]]
            for metric, column, weight in (
                ("train_loss", "train_loss", "train_examples"),
                ("test_loss", "test_loss", "test_examples"),
                ("accuracy", "weighted_accuracy", "test_examples"),
                ("macro_f1", "weighted_macro_f1", "test_examples"),
            ):
                assert number(row[column]) == pytest.approx(
                    weighted(own, metric, weight), rel=1e-9
                ), column
            assert number(row["pooled_accuracy"]) == pytest.approx(
                number(row["weighted_accuracy"]), rel=1e-9
            )
            assert int(row["test_examples"]) == sum(
                int(r["test_examples"]) for r in own
            )
            assert int(row["train_clients"]) == int(row["test_clients"]) == 3
        timing = read_rows(run / "timing.csv")
        assert list(timing[0]) == [
            "round",
            "train_seconds",
            "aggregate_seconds",
            "checkpoint_seconds",
            "evaluate_seconds",
        ]
        communication = read_rows(run / "communication.csv")
        assert {
            (r["round"], r["partition_id"], r["direction"]) for r in communication
        } == {
            (str(rnd), str(p), d)
            for rnd in (1, 2)
            for p in range(3)
            for d in ("down", "up")
        }

    # the top-level file is the mean (and std) of the two runs, round by round
    averaged = read_rows(experiment / "aggregated_metrics.csv")
    for rnd, row in enumerate(averaged):
        for column in ("weighted_accuracy", "pooled_macro_f1", "train_loss"):
            values = [number(run[rnd][column]) for run in per_run]
            assert number(row[f"{column}_mean"]) == pytest.approx(np.mean(values))
            assert number(row[f"{column}_std"]) == pytest.approx(
                np.std(values, ddof=1), abs=1e-12
            )
    for path in experiment.rglob("*.png"):
        assert_readable_png(path)
    assert len(list(experiment.rglob("*.png"))) == 7 + 2 * 7


def test_adaptive_choices_are_plotted_only_when_clients_change_them(tmp_path):
    def rows(choices: list[str]) -> list[dict[str, object]]:
        return [
            {"round": rnd, "partition_id": 0, "node_id": 1, "modalities": "acc",
             "accuracy": 0.5, "own_blocks": own}
            for rnd, own in enumerate(choices, start=1)
        ]  # fmt: skip

    fixed, adaptive = tmp_path / "fixed", tmp_path / "adaptive"
    fixed.mkdir(), adaptive.mkdir()
    plot_run(fixed, [], rows(["fusion+head"] * 3), "fixed")
    plot_run(adaptive, [], rows(["-", "head", "encoder:acc+head"]), "adaptive")
    assert not (fixed / "own_blocks.png").exists()
    assert_readable_png(adaptive / "own_blocks.png")
