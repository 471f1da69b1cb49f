"""The results directory of one experiment and what goes into it.

Column names say what a number is. In ``aggregated_metrics.csv``:
``weighted_*`` and ``test_loss``/``train_loss`` are example-weighted means of the
clients' metrics (the paper's convention); ``pooled_*`` are computed once over
all clients' test predictions together (one confusion matrix). Accuracy is the
same either way; macro-F1 is not.
"""

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from logging import INFO
from pathlib import Path

from flwr.supercore import log

from blossom_app.atomic_files import write_text_atomically
from blossom_app.common import metrics
from blossom_app.common.config import ExperimentConfig, toml_value
from blossom_app.common.metrics import column
from blossom_app.common.protocol import OWN_BLOCKS
from blossom_app.reporting.averaging import average_experiment
from blossom_app.reporting.csv_files import read_rows, write_rows
from blossom_app.reporting.layout import (
    AGGREGATED,
    CLIENTS,
    COMMUNICATION,
    COMPLETED_MARKER,
    CONFIG,
    LOG,
    MODALITIES,
    MODELS,
    REJECTIONS,
    TIMING,
    cell_dir,
    describe,
    results_root,
    run_dirs,
)
from blossom_app.reporting.plots import plot_experiment, plot_run
from blossom_app.reporting.run_record import RunRecord
from blossom_app.reporting.summary import final_table, models_lines

#: Columns of client_metrics.csv, in order.
CLIENT_COLUMNS = (
    "round",
    "partition_id",
    "node_id",
    "modalities",
    *(
        column(key)
        for key in (
            metrics.TRAIN_EXAMPLES,
            metrics.TRAIN_LOSS,
            metrics.TRAIN_SECONDS,
            metrics.TEST_EXAMPLES,
            metrics.TEST_LOSS,
            metrics.ACCURACY,
            metrics.MACRO_F1,
            OWN_BLOCKS,
        )
    ),
)

#: Phases timed by the strategy, in round order.
TIMING_PHASES = ("train", "aggregate", "evaluate", "checkpoint", "export")


def write_config(path: Path, run_config: Mapping[str, object]) -> Path:
    """Write the resolved run config as TOML (flat ``key = value`` lines)."""
    lines = [
        f"{key} = {toml_value(value)}" for key, value in sorted(run_config.items())
    ]
    return write_text_atomically(path, "\n".join(lines) + "\n")


def _columns(summary: Mapping[str, object]) -> dict[str, object]:
    return {column(k): v for k, v in summary.items()}


def aggregated_rows(
    aggregated: Mapping[int, Mapping[str, object]],
) -> list[dict[str, object]]:
    """One row per round: aggregated train metrics and evaluation metrics."""
    return [
        {"round": rnd, **_columns(summary)}
        for rnd, summary in sorted(aggregated.items())
    ]


def client_rows(
    train_rows: Iterable[Mapping[str, object]],
    evaluate_rows: Iterable[Mapping[str, object]],
) -> list[dict[str, object]]:
    """One row per round and client: its training and evaluation, where it had
    them (a client not sampled, or a round not evaluated, leaves cells empty)."""
    merged: dict[tuple, dict[str, object]] = {}

    def entry(row: Mapping[str, object]) -> dict[str, object]:
        key = (row["round"], row["partition_id"], row["node_id"])
        return merged.setdefault(key, dict.fromkeys(CLIENT_COLUMNS, ""))

    for row in (*train_rows, *evaluate_rows):
        entry(row).update(row)
    return [merged[key] for key in sorted(merged)]


def timing_rows(timing: Mapping[int, Mapping[str, float]]) -> list[dict]:
    """One row per round: seconds per phase. ``train_seconds`` runs from sending
    the train messages to the start of aggregation (the clients' round trip),
    ``aggregate_seconds`` is the server's averaging, ``evaluate_seconds`` the
    evaluation round trip, ``export_seconds`` the export round trip (last round,
    when models are exported)."""
    return [
        {
            "round": rnd,
            **{f"{p}_seconds": phases[p] for p in TIMING_PHASES if p in phases},
        }
        for rnd, phases in sorted(timing.items())
    ]


def complete_experiment(experiment: Path) -> None:
    """Plot every run, average over runs and plot the averages, from the
    ``run_<k>/`` CSVs. The averaged ``aggregated_metrics.csv`` is written last:
    it marks the experiment complete (``layout.is_complete``)."""
    title = describe(experiment)
    for run in run_dirs(experiment):
        plot_run(
            run,
            read_rows(run / AGGREGATED),
            read_rows(run / CLIENTS),
            f"{title}, {run.name.replace('_', ' ')}",
        )
    aggregated, by_modality = average_experiment(experiment)
    write_rows(experiment / MODALITIES, by_modality)
    plot_experiment(experiment, aggregated, by_modality, title)
    write_rows(experiment / COMPLETED_MARKER, aggregated)


class ExperimentOutput:
    """``<root>/<dataset>/<partitioner>/<mix>/<aggregation>/<timestamp>/``.

    Created at the start (writes ``config.toml``, starts ``run.log``), or
    reopened to continue; ``write_run`` after each run; ``finish`` once at the
    end.
    """

    def __init__(self, config: ExperimentConfig, run_config: Mapping[str, object]):
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        path = (
            cell_dir(
                results_root(config.results_dir),
                config.task.name,
                config.data.partitioner,
                config.mix.label,
                config.policy.name,
            )
            / stamp
        )
        path.mkdir(parents=True)  # never an existing one: never overwritten
        write_config(path / CONFIG, run_config)
        self._open(path)

    @classmethod
    def reopen(cls, path: Path) -> "ExperimentOutput":
        """The experiment ``path`` as it is, to continue (a resumed run):
        ``config.toml`` kept, ``run.log`` appended to."""
        output = cls.__new__(cls)
        output._open(path)
        return output

    def _open(self, path: Path) -> None:
        self.path = path
        self._log_handler = logging.FileHandler(path / LOG)
        self._log_handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s")
        )
        logging.getLogger("flwr").addHandler(self._log_handler)

    def run_dir(self, run_index: int) -> Path:
        path = self.path / f"run_{run_index}"
        path.mkdir(exist_ok=True)
        return path

    def write_run(self, run_index: int, record: RunRecord) -> Path:
        """Write one run's CSVs; return its directory."""
        path = self.run_dir(run_index)
        write_rows(path / AGGREGATED, aggregated_rows(record.aggregated))
        write_rows(path / CLIENTS, client_rows(record.train, record.evaluate))
        write_rows(path / COMMUNICATION, record.communication)
        write_rows(path / TIMING, timing_rows(record.timing))
        if record.rejections:
            write_rows(path / REJECTIONS, record.rejections)
        if record.models:
            write_rows(path / MODELS, record.models)
        return path

    def finish(self) -> None:
        """Average over runs and plot, log the final table, detach ``run.log``."""
        complete_experiment(self.path)
        for line in [*final_table(self.path).splitlines(), *models_lines(self.path)]:
            log(INFO, "%s", line)
        log(INFO, "BLOSSOM results written to %s", self.path)
        logging.getLogger("flwr").removeHandler(self._log_handler)
        self._log_handler.close()
