"""The results directory of one experiment and what goes into it."""

import logging
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from flwr.serverapp.strategy import Result

from ..config import ExperimentConfig
from .csv_files import write_rows

RESULTS_ENV = "BLOSSOM_RESULTS_DIR"


def results_root(configured: str) -> Path:
    """``results-dir``, else ``$BLOSSOM_RESULTS_DIR``, else ``~/blossom-results``.

    A relative path resolves against the ServerApp's working directory, which
    depends on where the SuperLink was started: prefer absolute paths.
    """
    root = configured or os.environ.get(RESULTS_ENV, "") or "~/blossom-results"
    return Path(root).expanduser().resolve()


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def write_config(path: Path, run_config: Mapping[str, object]) -> Path:
    """Write the resolved run config as TOML (flat ``key = value`` lines)."""
    lines = [
        f"{key} = {_toml_value(value)}" for key, value in sorted(run_config.items())
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def aggregated_rows(result: Result) -> list[dict[str, object]]:
    """One row per round: aggregated train metrics and evaluation metrics."""
    rounds = sorted(
        set(result.train_metrics_clientapp) | set(result.evaluate_metrics_clientapp)
    )
    rows = []
    for rnd in rounds:
        row: dict[str, object] = {"round": rnd}
        train = result.train_metrics_clientapp.get(rnd)
        if train is not None:
            row["train_loss"] = train["train-loss"]
        evaluation = result.evaluate_metrics_clientapp.get(rnd)
        if evaluation is not None:
            for key, value in evaluation.items():
                row[key.replace("-", "_")] = value
        rows.append(row)
    return rows


class ExperimentOutput:
    """``<root>/<dataset>/<partitioner>/<mix>/<aggregation>/<timestamp>/``."""

    def __init__(self, config: ExperimentConfig, run_config: Mapping[str, object]):
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        self.path = (
            results_root(config.results_dir)
            / config.task.name
            / config.partitioner
            / config.mix.label
            / config.policy.name
            / stamp
        )
        self.path.mkdir(parents=True)
        write_config(self.path / "config.toml", run_config)
        self._log_handler = logging.FileHandler(self.path / "run.log")
        self._log_handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s")
        )
        logging.getLogger("flwr").addHandler(self._log_handler)

    def run_dir(self, run_index: int) -> Path:
        path = self.path / f"run_{run_index}"
        path.mkdir(exist_ok=True)
        return path

    def write_run(self, run_index: int, result: Result, strategy) -> Path:
        """Write one run's CSVs; return its directory."""
        path = self.run_dir(run_index)
        write_rows(path / "aggregated_metrics.csv", aggregated_rows(result))
        write_rows(path / "client_metrics.csv", strategy.client_rows)
        write_rows(path / "communication.csv", strategy.communication)
        write_rows(
            path / "timing.csv",
            (
                {"round": rnd, **phases}
                for rnd, phases in sorted(strategy.timing.items())
            ),
        )
        if strategy.rejections:
            write_rows(path / "rejections.csv", strategy.rejections)
        return path

    def close(self) -> None:
        logging.getLogger("flwr").removeHandler(self._log_handler)
        self._log_handler.close()
