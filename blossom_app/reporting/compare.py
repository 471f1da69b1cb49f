"""Compare finished experiments of one dataset and partitioner: aggregation
policies x modality mixes (final metric +- std over runs, and each policy's
relative gain over ``full-model`` and, where it was run, over ``local``, the
no-federation baseline, on the same mix; and its gap in points to
``centralized``, the pooled-data limit, and to the best fixed policy, so that
a row shows at a glance whether a choice holds on its split).

Experiments share a row only when they ran alike: other run configs are
*variants* (``variants.py``), each with rows of its own, and gains are taken
within a variant.
"""

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from blossom_app.atomic_files import write_text_atomically
from blossom_app.common.metrics import CLIENT_METRICS
from blossom_app.common.policies import (
    Baseline,
    baseline,
    is_fixed_federated,
    policy_order,
)
from blossom_app.reporting.comparison_plots import (
    Bar,
    comparison_bars,
    comparison_curves,
)
from blossom_app.reporting.csv_files import number, read_rows, write_rows
from blossom_app.reporting.layout import (
    AGGREGATED,
    COMMUNICATION,
    COMPARISON,
    MODALITIES,
    find_experiments,
    labels,
    run_dirs,
)
from blossom_app.reporting.plots import modality_colors, policy_colors, series
from blossom_app.reporting.variants import variants

#: Compared columns of the averaged aggregated_metrics.csv -> header text.
COMPARED = {
    "weighted_accuracy": "accuracy (weighted)",
    "weighted_macro_f1": "macro-F1 (weighted)",
    "pooled_macro_f1": "macro-F1 (pooled)",
}
#: Suffix of a compared metric's gap to the best fixed policy, in points.
BEST_FIXED = "_vs_best_fixed_pts"
#: Per-modality-set metrics compared in plots (modality_metrics.csv columns).
COMPARED_BY_MODALITY = ("accuracy", "macro_f1")


@dataclass(frozen=True)
class Experiment:
    """A finished experiment: its cell and its across-run tables."""

    path: Path
    mix: str
    policy: str
    aggregated: list[dict[str, str]]
    by_modality: list[dict[str, str]]
    variant: str = ""  # what set its run config apart (``variants``)

    @classmethod
    def load(cls, path: Path, variant: str = "") -> "Experiment":
        cell = labels(path)
        return cls(
            path,
            cell["mix"],
            cell["aggregation"],
            read_rows(path / AGGREGATED),
            read_rows(path / MODALITIES),
            variant,
        )

    @property
    def group(self) -> str:
        """Its mix, with its variant where it has one (a plot's group)."""
        return f"{self.mix} ({self.variant})" if self.variant else self.mix

    @property
    def runs(self) -> int:
        return max((int(row["runs"]) for row in self.aggregated), default=0)

    @property
    def rounds(self) -> int:
        return max((int(row["round"]) for row in self.aggregated), default=0)


def final(rows: Sequence[Mapping[str, str]], column: str) -> tuple[int, float, float]:
    """``(round, mean, std)`` of the last round with a value of ``column``
    (an across-run table's ``<column>_mean``/``_std``); NaNs when none."""
    for row in reversed(rows):
        mean = number(row.get(f"{column}_mean", ""))
        if not math.isnan(mean):
            return int(row["round"]), mean, number(row[f"{column}_std"])
    return 0, math.nan, math.nan


def relative_gain(value: float, baseline: float) -> float:
    """``(value - baseline) / baseline`` in percent; NaN without a baseline."""
    if math.isnan(baseline) or baseline == 0:
        return math.nan
    return (value - baseline) / baseline * 100.0


#: Phases counted in "MB per round"; the export after the last round is not.
ROUND_PHASES = ("train", "evaluate")


def megabytes_per_round(experiment: Path) -> float:
    """Bytes sent (down and up, all nodes, train and evaluate phases) per round,
    in MB (1e6 B), averaged over rounds and runs."""
    per_run = []
    for run in run_dirs(experiment):
        rows = [
            row
            for row in read_rows(run / COMMUNICATION)
            if row["phase"] in ROUND_PHASES
        ]
        rounds = {row["round"] for row in rows}
        if rounds:
            per_run.append(sum(int(row["bytes"]) for row in rows) / len(rounds) / 1e6)
    return sum(per_run) / len(per_run) if per_run else math.nan


def comparison_table(experiments: Iterable[Experiment]) -> list[dict[str, object]]:
    """One row per mix, variant and policy: runs, final round, and per compared
    metric ``<metric>_mean``, ``<metric>_std``, ``<metric>_gain_pct`` (relative
    gain over ``full-model`` of the same mix and variant),
    ``<metric>_gain_local_pct`` (over ``local``), ``<metric>_vs_centralized_pts``
    and ``<metric>_vs_best_fixed_pts`` (the difference in points from
    ``centralized`` and from the best fixed policy, ``is_fixed_federated``, of
    the same mix and variant; ``<metric>_best_fixed`` names it), then
    ``mb_per_round``."""
    chosen = sorted(
        experiments, key=lambda e: (e.mix, e.variant, policy_order(e.policy))
    )
    finals = {(e.mix, e.variant, e.policy): e for e in chosen}
    gains, local = baseline(Baseline.GAINS), baseline(Baseline.NO_FEDERATION)
    pooled = baseline(Baseline.POOLED)
    table = []
    for experiment in chosen:
        base_row = finals.get((experiment.mix, experiment.variant, gains))
        alone = finals.get((experiment.mix, experiment.variant, local))
        limit = finals.get((experiment.mix, experiment.variant, pooled))
        fixed = [
            e
            for e in chosen
            if (e.mix, e.variant) == (experiment.mix, experiment.variant)
            and is_fixed_federated(e.policy)
        ]
        row: dict[str, object] = {
            "mix": experiment.mix,
            "variant": experiment.variant,
            "policy": experiment.policy,
            "runs": experiment.runs,
            "rounds": experiment.rounds,
        }
        for column in COMPARED:
            _, mean, std = final(experiment.aggregated, column)
            base = final(base_row.aggregated, column)[1] if base_row else math.nan
            row[f"{column}_mean"] = mean
            row[f"{column}_std"] = std
            row[f"{column}_gain_pct"] = relative_gain(mean, base)
            base = final(alone.aggregated, column)[1] if alone else math.nan
            row[f"{column}_gain_local_pct"] = relative_gain(mean, base)
            base = final(limit.aggregated, column)[1] if limit else math.nan
            row[f"{column}_vs_centralized_pts"] = (mean - base) * 100
            best = max(
                ((final(e.aggregated, column)[1], e.policy) for e in fixed),
                key=lambda value: -math.inf if math.isnan(value[0]) else value[0],
                default=(math.nan, ""),
            )
            row[f"{column}{BEST_FIXED}"] = (mean - best[0]) * 100
            row[f"{column}_best_fixed"] = best[1]
        row["mb_per_round"] = megabytes_per_round(experiment.path)
        table.append(row)
    return table


def _cells(table: Sequence[Mapping[str, object]]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells shared by the printed and the markdown table."""
    gains = {"_gain_pct": baseline(Baseline.GAINS)}
    local = baseline(Baseline.NO_FEDERATION)
    if any(row["policy"] == local for row in table):
        gains["_gain_local_pct"] = local
    cell_columns = ["mix", "policy", "runs", "rounds"]
    if any(row["variant"] for row in table):
        cell_columns.insert(1, "variant")
    # gaps in points, where the table has what they are taken from
    gaps = {}
    if any(row["policy"] == baseline(Baseline.POOLED) for row in table):
        gaps["_vs_centralized_pts"] = baseline(Baseline.POOLED)
    if any(is_fixed_federated(str(row["policy"])) for row in table):
        gaps[BEST_FIXED] = "best fixed"
    header = list(cell_columns)
    for text in COMPARED.values():
        header += [text, *(f"vs {base}" for base in gains.values())]
        header += [f"vs {base} (pts)" for base in gaps.values()]
    header.append("MB/round")
    rows = []
    for row in table:
        cells = [str(row[k]) or "-" for k in cell_columns]
        for column in COMPARED:
            mean, std = row[f"{column}_mean"], row[f"{column}_std"]
            cells.append(f"{mean:.3f}" + ("" if math.isnan(std) else f" ± {std:.3f}"))
            for suffix, base in gains.items():
                gain = row[f"{column}{suffix}"]
                if row["policy"] == base:
                    cells.append("(base)")
                else:
                    cells.append("n/a" if math.isnan(gain) else f"{gain:+.1f} %")
            best = row[f"{column}_best_fixed"]
            for suffix, base in gaps.items():
                gap = row[f"{column}{suffix}"]
                if row["policy"] == (best if suffix == BEST_FIXED else base):
                    cells.append("(base)")
                elif math.isnan(gap):
                    cells.append("n/a")
                else:
                    named = f" ({best})" if suffix == BEST_FIXED else ""
                    cells.append(f"{gap:+.1f}{named}")
        cells.append(f"{row['mb_per_round']:.2f}")
        rows.append(cells)
    return header, rows


def format_text(table: Sequence[Mapping[str, object]], title: str) -> str:
    """The table as aligned text (for the terminal)."""
    header, rows = _cells(table)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [title]
    for cells in [header, *rows]:
        text = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        lines.append(text.rstrip())
    return "\n".join(lines)


def format_markdown(table: Sequence[Mapping[str, object]], title: str) -> str:
    """The table as GitHub markdown (for pasting into notes)."""
    header, rows = _cells(table)
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def _bars(
    policies: Sequence[str],
    groups: Sequence[str],
    rows_of: Callable[[str, str], Sequence[Mapping[str, str]] | None],
    column: str,
) -> dict[str, list[Bar | None]]:
    """{policy: one bar per group}: the final mean and std of ``column`` in
    ``rows_of(policy, group)`` (None: no experiment), noted with its relative
    gain over ``full-model`` in the same group."""
    finals = {
        policy: [
            None if (rows := rows_of(policy, group)) is None else final(rows, column)
            for group in groups
        ]
        for policy in policies
    }
    gains = baseline(Baseline.GAINS)
    bases = finals.get(gains, [None] * len(groups))
    bars: dict[str, list[Bar | None]] = {}
    for policy, values in finals.items():
        bars[policy] = []
        for value, base in zip(values, bases, strict=True):
            if value is None:
                bars[policy].append(None)
                continue
            gain = relative_gain(value[1], base[1] if base else math.nan)
            note = "" if policy == gains or math.isnan(gain) else f"{gain:+.0f} %"
            bars[policy].append(Bar(value[1], value[2], note))
    return bars


def _plot(out: Path, experiments: Sequence[Experiment], title: str) -> list[Path]:
    by_cell = {(e.group, e.policy): e for e in experiments}
    mixes = sorted({e.group for e in experiments})
    policies = sorted({e.policy for e in experiments}, key=policy_order)
    colors = policy_colors(policies)
    written = []
    for column, text in COMPARED.items():
        bars = _bars(
            policies,
            mixes,
            lambda p, mix: by_cell[mix, p].aggregated if (mix, p) in by_cell else None,
            column,
        )
        written.append(
            comparison_bars(
                out / f"comparison_{column}.png",
                f"{title}\nfinal {text}, mean ± std over runs",
                text,
                {"": (mixes, bars)},
                colors,
            )
        )
        curves = {
            f"mix {mix}": [
                series(by_cell[mix, p].aggregated, column, p, colors[p])
                for p in policies
                if (mix, p) in by_cell
            ]
            for mix in mixes
        }
        written.append(
            comparison_curves(
                out / f"comparison_curves_{column}.png",
                f"{title}\n{text} per round, mean ± std over runs",
                text,
                curves,
            )
        )
    for metric in COMPARED_BY_MODALITY:
        panels = {}
        for mix in mixes:
            cells = [by_cell[mix, p] for p in policies if (mix, p) in by_cell]
            seen = {r["modalities"] for e in cells for r in e.by_modality}
            groups = [s for s in modality_colors(seen) if s in seen]

            def rows_of(policy: str, group: str, mix: str = mix) -> list | None:
                cell = by_cell.get((mix, policy))
                if cell is None:
                    return None
                return [r for r in cell.by_modality if r["modalities"] == group]

            panels[f"mix {mix}"] = (groups, _bars(policies, groups, rows_of, metric))
        written.append(
            comparison_bars(
                out / f"comparison_modality_{metric}.png",
                f"{title}\nfinal {CLIENT_METRICS[metric][1].lower()} per modality set\n"
                "(weighted over its clients), mean ± std over runs",
                CLIENT_METRICS[metric][1],
                panels,
                colors,
            )
        )
    return written


@dataclass(frozen=True)
class Comparison:
    """What ``compare`` wrote for one dataset and partitioner."""

    out: Path
    text: str
    files: list[Path]


def compare(paths: Sequence[Path], out: Path | None = None) -> list[Comparison]:
    """Compare every finished experiment in or under ``paths``, per dataset and
    partitioner, a row per cell and variant (``variants``); with several
    experiments of one cell and variant, the latest counts.

    Writes into ``<out>/<dataset>/<partitioner>/comparison/``; ``out`` defaults
    to the experiments' own results root.
    """
    complete, _ = find_experiments(list(paths))
    groups: dict[Path, list[Path]] = defaultdict(list)
    for path in complete:
        groups[path.parents[2]].append(path)
    comparisons = []
    for group, found in sorted(groups.items()):
        variant = variants(found)
        cells: dict[tuple[str, str, str], Path] = {}
        for path in found:  # sorted: a later timestamp replaces an earlier one
            cell = labels(path)
            cells[cell["mix"], cell["aggregation"], variant[path]] = path
        experiments = [Experiment.load(path, variant[path]) for path in cells.values()]
        dataset, partitioner = group.parent.name, group.name
        target = (out / dataset / partitioner if out else group) / COMPARISON
        target.mkdir(parents=True, exist_ok=True)
        title = f"{dataset} / {partitioner}: policies x modality mixes"
        table = comparison_table(experiments)
        text = format_text(table, title)
        files = [
            write_rows(target / "comparison.csv", table),
            write_text_atomically(
                target / "comparison.md", format_markdown(table, title)
            ),
            *_plot(target, experiments, title),
        ]
        comparisons.append(Comparison(target, text, files))
    return comparisons
