"""Plots of an experiment's metrics (matplotlib ``Figure`` objects: no display,
no global backend state).

Every line plot is per metric over rounds, with one colour per modality set
(the same set gets the same colour in every plot), a ± std band where the
values are means over runs, and each line's final, maximum and minimum in its
legend entry (the maximum and minimum also marked on the line).
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from blossom_app.atomic_files import atomic_open
from blossom_app.common.metrics import CLIENT_METRICS, column
from blossom_app.common.policies import Baseline, baseline
from blossom_app.common.protocol import OWN_BLOCKS
from blossom_app.reporting.csv_files import number

Row = Mapping[str, object]
OWN_COLUMN = column(OWN_BLOCKS)


#: Aggregated figures: name -> (axis label, [(column, legend label, colour, style)]).
AGGREGATE_FIGURES = {
    "accuracy": (
        "Accuracy",
        [("weighted_accuracy", "all clients (weighted mean = pooled)", "black", "-")],
    ),
    "macro_f1": (
        "Macro-F1",
        [
            ("weighted_macro_f1", "example-weighted mean of clients", "black", "-"),
            ("pooled_macro_f1", "pooled over all test predictions", "tab:red", "--"),
        ],
    ),
    "loss": (
        "Loss",
        [
            ("train_loss", "train (weighted mean of clients)", "black", "-"),
            ("test_loss", "test (weighted mean of clients)", "tab:red", "--"),
        ],
    ),
}

PALETTE = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
)
POLICY_PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")
BASELINE_COLOR = "dimgray"
STYLES = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class Series:
    """One line: ``values[i]`` at ``rounds[i]``, and its ± ``std`` (NaN: none)."""

    label: str
    rounds: list[int]
    values: list[float]
    std: list[float]
    color: str
    style: str = "-"


def series(
    rows: Iterable[Row], column: str, label: str, color: str, style: str = "-"
) -> Series:
    """The per-round ``column`` of ``rows``, or of an across-run table's
    ``<column>_mean`` and ``<column>_std``; rounds without a value are left out."""
    points = []
    for row in rows:
        if f"{column}_mean" in row:
            value, std = number(row[f"{column}_mean"]), number(row[f"{column}_std"])
        else:
            value, std = number(row.get(column, "")), math.nan
        if not math.isnan(value):
            points.append((int(row["round"]), value, std))
    rounds, values, stds = ([p[i] for p in points] for i in range(3))
    return Series(label, rounds, values, stds, color, style)


def modality_colors(labels: Iterable[str]) -> dict[str, str]:
    """A fixed colour per modality set.

    The sets that can be formed from the modalities seen, ordered by size then
    name (``acc``, ``gyro``, ``acc+gyro``), take the palette's colours in turn,
    so a set has the same colour whichever mix it appears in.
    """
    names = sorted({m for label in labels for m in label.split("+")})
    sets = [
        "+".join(c)
        for size in range(1, len(names) + 1)
        for c in combinations(names, size)
    ]
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(sets)}


def policy_colors(policies: Sequence[str]) -> dict[str, str]:
    """A colour per policy, in the given order: the baseline of the gains
    (``full-model``, ``policies.py``) grey, the others in palette order."""
    base = baseline(Baseline.GAINS)
    others = iter(POLICY_PALETTE * len(policies))
    return {p: BASELINE_COLOR if p == base else next(others) for p in policies}


def _legend_label(line: Series) -> str:
    v = line.values
    top, low = v.index(max(v)), v.index(min(v))
    return (
        f"{line.label}\nfinal {v[-1]:.3f} · max {v[top]:.3f} (r{line.rounds[top]})"
        f" · min {v[low]:.3f} (r{line.rounds[low]})"
    )


def draw_series(ax: Axes, lines: Sequence[Series], mark_extremes: bool = True) -> None:
    """Draw ``lines`` (empty ones skipped) with std bands and annotated legend."""
    for line in lines:
        if not line.values:
            continue
        marker = "o" if len(line.rounds) <= 30 else None
        ax.plot(
            line.rounds,
            line.values,
            linestyle=line.style,
            color=line.color,
            marker=marker,
            markersize=3,
            label=_legend_label(line),
        )
        if any(not math.isnan(s) for s in line.std):
            spread = [0.0 if math.isnan(s) else s for s in line.std]
            pairs = list(zip(line.values, spread, strict=True))
            ax.fill_between(
                line.rounds,
                [v - s for v, s in pairs],
                [v + s for v, s in pairs],
                color=line.color,
                alpha=0.15,
                linewidth=0,
            )
        if mark_extremes:
            for pick, shape in ((max, "^"), (min, "v")):
                i = line.values.index(pick(line.values))
                ax.plot(
                    line.rounds[i],
                    line.values[i],
                    shape,
                    color=line.color,
                    markersize=9,
                )
    ax.margins(x=0.08)  # room for the final values on the right
    _label_finals(ax, [line for line in lines if line.values])
    ax.set_xlabel("Round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)


def _label_finals(ax: Axes, lines: Sequence[Series]) -> None:
    """Write each line's final value right of its end, nudged apart vertically
    so that close values stay legible."""
    low, high = ax.get_ylim()
    gap = 0.035 * (high - low)
    placed: list[float] = []
    for line in sorted(lines, key=lambda line: line.values[-1]):
        y = line.values[-1]
        if placed and y < placed[-1] + gap:
            y = placed[-1] + gap
        placed.append(y)
        ax.annotate(
            f"{line.values[-1]:.3f}",
            (line.rounds[-1], y),
            xytext=(7, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color=line.color,
            annotation_clip=False,
        )


def save_figure(figure: Figure, path: Path) -> Path:
    """Save ``figure`` to ``path`` atomically, in the format its suffix names."""
    with atomic_open(path) as handle:
        figure.savefig(handle, format=path.suffix[1:], dpi=110)
    return path


def line_plot(
    path: Path,
    title: str,
    ylabel: str,
    lines: Sequence[Series],
    mark_extremes: bool = True,
) -> Path | None:
    """One line plot with the legend to the right; None (no file) without data."""
    if not any(line.values for line in lines):
        return None
    figure = Figure(figsize=(10, 5), layout="constrained")
    ax = figure.add_subplot()
    draw_series(ax, lines, mark_extremes)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return save_figure(figure, path)


def _aggregate_plots(
    out: Path, prefix: str, rows: Sequence[Row], title: str
) -> list[Path]:
    written = []
    for name, (ylabel, columns) in AGGREGATE_FIGURES.items():
        lines = [series(rows, *column) for column in columns]
        path = line_plot(
            out / f"{prefix}_{name}.png", f"{title}\n{ylabel}", ylabel, lines
        )
        written += [path] if path else []
    return written


def plot_run(
    run_dir: Path, aggregated: Sequence[Row], clients: Sequence[Row], title: str
) -> list[Path]:
    """``aggregated_<metric>.png`` and ``client_wise_<metric>.png`` of one run.

    ``aggregated``/``clients``: the run's aggregated_metrics.csv and
    client_metrics.csv rows.
    """
    written = _aggregate_plots(run_dir, "aggregated", aggregated, title)
    colors = modality_colors(str(r["modalities"]) for r in clients)
    keys = sorted(
        {(str(r["modalities"]), int(r["partition_id"])) for r in clients},
        key=lambda k: (list(colors).index(k[0]), k[1]),
    )
    # clients of one modality set share its colour and differ by line style
    styles = {
        key: STYLES[[k[0] for k in keys[:i]].count(key[0]) % len(STYLES)]
        for i, key in enumerate(keys)
    }
    for metric, (_, ylabel) in CLIENT_METRICS.items():
        lines = [
            series(
                [r for r in clients if int(r["partition_id"]) == partition],
                metric,
                f"client {partition} ({modalities})",
                colors[modalities],
                styles[modalities, partition],
            )
            for modalities, partition in keys
        ]
        path = line_plot(
            run_dir / f"client_wise_{metric}.png",
            f"{title}\n{ylabel} per client (personalized model, local data)",
            ylabel,
            lines,
            mark_extremes=False,
        )
        written += [path] if path else []
    path = _own_blocks_plot(run_dir, clients, title)
    return written + ([path] if path else [])


def _own_blocks_plot(run_dir: Path, clients: Sequence[Row], title: str) -> Path | None:
    """``own_blocks.png``: per block, the share of evaluated clients whose
    personalized model took it from their own training, per round; drawn only
    when choices vary (adaptive personalization)."""
    evaluated = [r for r in clients if r.get(OWN_COLUMN, "")]
    if len({(r["partition_id"], r[OWN_COLUMN]) for r in evaluated}) <= len(
        {r["partition_id"] for r in evaluated}
    ):
        return None  # every client kept one choice: a fixed policy
    rounds = sorted({int(r["round"]) for r in evaluated})
    blocks = sorted({b for r in evaluated for b in r[OWN_COLUMN].split("+")} - {"-"})
    lines = []
    for index, block in enumerate(blocks):
        shares = []
        for rnd in rounds:
            rows = [r for r in evaluated if int(r["round"]) == rnd]
            own = sum(block in r[OWN_COLUMN].split("+") for r in rows)
            shares.append(own / len(rows))
        color = PALETTE[index % len(PALETTE)]
        lines.append(Series(block, rounds, shares, [math.nan] * len(rounds), color))
    return line_plot(
        run_dir / "own_blocks.png",
        f"{title}\nShare of clients using their own version of each block",
        "Share of clients",
        lines,
        mark_extremes=False,
    )


def plot_experiment(
    experiment: Path, aggregated: Sequence[Row], by_modality: Sequence[Row], title: str
) -> list[Path]:
    """``averaged_<metric>.png`` and ``modality_wise_<metric>.png``: means over
    runs with ± std bands. ``aggregated``/``by_modality``: across-run tables
    (``averaging.average_experiment``)."""
    runs = max((int(r["runs"]) for r in aggregated), default=0)
    subtitle = f"{title}, mean ± std over {runs} run{'s' * (runs != 1)}"
    written = _aggregate_plots(experiment, "averaged", aggregated, subtitle)
    colors = modality_colors(str(r["modalities"]) for r in by_modality)
    present = [m for m in colors if any(r["modalities"] == m for r in by_modality)]
    for metric, (_, ylabel) in CLIENT_METRICS.items():
        lines = []
        for modalities in present:
            own = [r for r in by_modality if r["modalities"] == modalities]
            clients = round(number(own[0]["clients_mean"]))
            label = f"{modalities} ({clients} client{'s' * (clients != 1)})"
            lines.append(series(own, metric, label, colors[modalities]))
        path = line_plot(
            experiment / f"modality_wise_{metric}.png",
            f"{subtitle}\n{ylabel}, example-weighted mean over the clients of each set",
            ylabel,
            lines,
        )
        written += [path] if path else []
    return written
