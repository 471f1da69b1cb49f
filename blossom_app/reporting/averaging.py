"""Averages of an experiment's metrics: over clients of a modality set, over runs.

Conventions: a client metric is averaged over clients weighted by the client's
examples (train examples for ``train_loss``, test examples otherwise), the
paper's convention. Across runs, each value is the plain mean over the runs
that reported it, with the sample standard deviation (ddof 1; empty for one
run, which says nothing about spread).
"""

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from blossom_app.common.metrics import CLIENT_METRICS, weighted_mean
from blossom_app.reporting.csv_files import number, read_rows
from blossom_app.reporting.layout import AGGREGATED, CLIENTS, run_dirs

Row = Mapping[str, object]


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the non-NaN ``values``.

    NaN for the mean when there is no value, for the std when there is one.
    """
    present = [v for v in values if not math.isnan(v)]
    if not present:
        return math.nan, math.nan
    mean = sum(present) / len(present)
    if len(present) == 1:
        return mean, math.nan
    variance = sum((v - mean) ** 2 for v in present) / (len(present) - 1)
    return mean, math.sqrt(variance)


def _group_order(key: tuple[object, ...]) -> tuple[tuple[int, object], ...]:
    """Numbers (rounds) in numeric order, then text (modality sets)."""
    return tuple((0, int(v)) if str(v).isdigit() else (1, str(v)) for v in key)


def _grouped(rows: Iterable[Row], by: Sequence[str]) -> dict[tuple, list[Row]]:
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows:
        groups[tuple(str(row[c]) for c in by)].append(row)
    return {key: groups[key] for key in sorted(groups, key=_group_order)}


def weighted_means(client_rows: Iterable[Row], by: Sequence[str]) -> list[dict]:
    """Example-weighted mean of each client metric per group of ``by`` columns.

    E.g. ``by=("round", "modalities")``: for each round and modality set,
    ``sum_i n_i m_i / sum_i n_i`` over that set's clients that reported ``m``
    (``n_i``: see ``CLIENT_METRICS``), plus ``clients`` (how many clients).
    """
    table = []
    for key, members in _grouped(client_rows, by).items():
        row: dict[str, object] = dict(zip(by, key, strict=True))
        row["clients"] = len(members)
        for metric, (weight, _) in CLIENT_METRICS.items():
            row[metric] = weighted_mean(
                (number(m[metric]), number(m[weight]))
                for m in members
                if m.get(metric, "") != ""
            )
        table.append(row)
    return table


def average_runs(runs: Sequence[Sequence[Row]], by: Sequence[str]) -> list[dict]:
    """Mean and std across runs of every other column, per group of ``by``.

    ``runs`` holds one table per run (e.g. each run's aggregated_metrics.csv);
    all columns but ``by`` must be numeric. Returns one row per group with the
    ``by`` columns, ``runs`` (how many runs have the group), and
    ``<column>_mean`` and ``<column>_std`` for every other column.
    """
    tagged = [{**row, "_run": index} for index, rows in enumerate(runs) for row in rows]
    table = []
    for key, members in _grouped(tagged, by).items():
        row: dict[str, object] = dict(zip(by, key, strict=True))
        row["runs"] = len({m["_run"] for m in members})
        skip = {*by, "_run"}
        columns = dict.fromkeys(c for m in members for c in m if c not in skip)
        for column in columns:
            mean, std = mean_std(number(m.get(column, "")) for m in members)
            row[f"{column}_mean"] = mean
            row[f"{column}_std"] = std
        table.append(row)
    return table


def average_experiment(experiment: Path) -> tuple[list[dict], list[dict]]:
    """Across-run averages of an experiment, read from its ``run_<k>/`` CSVs.

    Returns ``(aggregated, by_modality)``: the per-round aggregated metrics and
    the per-round, per-modality-set weighted means of the client metrics, each
    as mean and std over runs.
    """
    runs = run_dirs(experiment)
    aggregated = average_runs([read_rows(run / AGGREGATED) for run in runs], ["round"])
    by_modality = average_runs(
        [
            weighted_means(read_rows(run / CLIENTS), ["round", "modalities"])
            for run in runs
        ],
        ["round", "modalities"],
    )
    return aggregated, by_modality
