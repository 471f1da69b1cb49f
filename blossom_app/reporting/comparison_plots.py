"""The figures ``blossom compare`` draws across experiments: grouped bars of
final metrics per policy, and panels of curves (matplotlib ``Figure`` objects,
as in ``plots.py``)."""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from blossom_app.reporting.plots import Series, draw_series, save_figure


@dataclass(frozen=True)
class Bar:
    """One bar: a mean over runs, its std (NaN: no spread known) and a note
    printed under the value (e.g. a relative gain)."""

    mean: float
    std: float
    note: str = ""


def _panels(count: int, title: str) -> tuple[Figure, list[Axes]]:
    """A figure of ``count`` panels, three per row, sharing the y axis."""
    columns, rows = min(count, 3), math.ceil(count / 3)
    size = (max(7.0, 1 + 4.5 * columns), 1.5 + 4 * rows)
    figure = Figure(figsize=size, layout="constrained")
    axes = list(figure.subplots(rows, columns, squeeze=False, sharey=True).ravel())
    for unused in axes[count:]:
        unused.set_visible(False)
    figure.suptitle(title, fontsize=11)
    return figure, axes[:count]


def comparison_bars(
    path: Path,
    title: str,
    ylabel: str,
    panels: Mapping[str, tuple[Sequence[str], Mapping[str, Sequence[Bar | None]]]],
    colors: Mapping[str, str],
) -> Path:
    """Grouped bars. ``panels``: panel title -> (x groups, {policy: one bar per
    group, None for none}); a bar shows its mean, a ± std whisker, and its
    value and note above it. ``colors`` orders the bars in a group."""
    figure, axes = _panels(len(panels), title)
    width = min(0.8 / len(colors), 0.3)
    for ax, (name, (groups, bars)) in zip(axes, panels.items(), strict=True):
        for slot, (policy, color) in enumerate(colors.items()):
            for index, bar in enumerate(bars.get(policy, [])):
                if bar is None or math.isnan(bar.mean):
                    continue
                x = index + (slot - (len(colors) - 1) / 2) * width
                spread = 0.0 if math.isnan(bar.std) else bar.std
                ax.bar(x, bar.mean, width, color=color, yerr=spread or None, capsize=3)
                ax.annotate(
                    f"{bar.mean:.3f}" + (f"\n{bar.note}" if bar.note else ""),
                    (x, bar.mean + spread),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_xticks(range(len(groups)), groups)
        ax.set_title(name, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ax.margins(y=0.12)  # room for the values above the bars
    axes[0].set_ylabel(ylabel)
    handles = [Patch(color=color, label=policy) for policy, color in colors.items()]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    return save_figure(figure, path)


def comparison_curves(
    path: Path, title: str, ylabel: str, panels: Mapping[str, Sequence[Series]]
) -> Path:
    """Line panels (e.g. one per modality mix), each with its own legend below."""
    figure, axes = _panels(len(panels), title)
    for ax, (name, lines) in zip(axes, panels.items(), strict=True):
        draw_series(ax, lines, mark_extremes=False)
        ax.set_title(name, fontsize=10)
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize=7, frameon=False
        )
    axes[0].set_ylabel(ylabel)
    return save_figure(figure, path)
