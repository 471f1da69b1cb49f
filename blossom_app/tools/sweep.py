"""Run a grid of experiments (datasets x partitioners x policies x mixes) through
the real Flower app (``flwr run``, one run per cell), then compare them. A cell
of policy ``centralized`` is the pooled-data baseline of the same config, run in
this process (``centralized.py``).

A cell is skipped when a complete experiment with the same run config already
exists under the results root, and an unfinished one with a usable checkpoint
is resumed from it (``resume``), so an interrupted sweep goes on where it
stopped, mid-cell included.
"""

import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import product
from pathlib import Path
from statistics import fmean

from blossom_app.common.blocks import Policy
from blossom_app.common.config import ExperimentConfig, Scalar
from blossom_app.common.policies import CENTRALIZED, policy_keys, swept_policies
from blossom_app.common.presets import (
    GRID_MIXES,
    GRID_PARTITIONERS,
    app_defaults,
    resolve_preset,
)
from blossom_app.errors import ConfigError
from blossom_app.reporting.compare import Comparison, compare
from blossom_app.reporting.layout import cell_dir, find_experiments, read_config
from blossom_app.server.checkpoint import CheckpointError
from blossom_app.server.resume import find_resume
from blossom_app.tools.flwr_runner import RunOutcome, run_app
from blossom_app.tools.preflight import check_data

#: Run-config keys that say where results go, not what was run.
NOT_COMPARED = frozenset({"results-dir"})


@dataclass(frozen=True)
class Cell:
    """One experiment of the grid.

    ``run_config``: the values passed to ``flwr run --run-config``;
    ``resolved``: those over the app's defaults, with the preset applied
    (what the ServerApp will see and record);
    ``config``: the validated experiment (it gives the number of nodes);
    ``defaults``: the app's run config defaults.
    """

    run_config: dict[str, Scalar]
    resolved: dict[str, Scalar]
    config: ExperimentConfig
    defaults: dict[str, Scalar]

    @property
    def name(self) -> str:
        c = self.config
        return f"{c.task.name}/{c.data.partitioner}/{c.mix.label}/{c.policy.name}"

    def directory(self, root: Path) -> Path:
        c = self.config
        return cell_dir(
            root, c.task.name, c.data.partitioner, c.mix.label, c.policy.name
        )

    def finished(self, root: Path) -> Path | None:
        """The latest complete experiment of this cell that ran with the same
        resolved run config (apart from where its results went), if any. A key
        an older experiment's config lacks counts as the app's default, so
        adding a key to the app does not void old results."""
        complete, _ = find_experiments([self.directory(root)])
        matching = self._alike(complete)
        return matching[-1] if matching else None

    def interrupted(self, root: Path) -> Path | None:
        """The latest unfinished experiment of this cell, with the same run
        config, that its checkpoint can resume; None if there is none."""
        _, incomplete = find_experiments([self.directory(root)])
        for path in reversed(self._alike(incomplete)):
            try:
                find_resume(str(path), self.resolved, self.defaults)
            except (CheckpointError, ConfigError):
                continue
            return path
        return None

    def _alike(self, experiments: list[Path]) -> list[Path]:
        wanted = {k: v for k, v in self.resolved.items() if k not in NOT_COMPARED}
        return [
            path
            for path in experiments
            if all(
                {**self.defaults, **read_config(path)}.get(k) == v
                for k, v in wanted.items()
            )
        ]


@dataclass(frozen=True)
class SweepGrid:
    """Which experiments a sweep runs: every combination of these values.

    The defaults are the paper's grid per dataset, 2 partitioners x 3 mixes x
    3 policies, plus the ``local`` baseline (training alone) on each partitioner
    and mix: 24 experiments (the registry's ``swept`` policies, ``policies.py``).
    """

    datasets: tuple[str, ...] = ("watch",)
    partitioners: tuple[str, ...] = GRID_PARTITIONERS
    mixes: tuple[str, ...] = GRID_MIXES
    policies: tuple[str, ...] = field(default_factory=lambda: tuple(swept_policies()))

    def cells(
        self, app_dir: Path, root: Path, overrides: Mapping[str, Scalar]
    ) -> list[Cell]:
        """Every cell, each validated (as the ServerApp will, and its data as
        ``preflight`` checks it) before anything runs. ``overrides`` are extra
        run-config values for every cell (rounds, runs...). Raises ConfigError
        naming the bad key or value."""
        defaults = app_defaults(app_dir)
        unknown = sorted(set(overrides) - set(defaults))
        if unknown:
            raise ConfigError("--run-config", ", ".join(unknown), ", ".join(defaults))
        cells = []
        for dataset, partitioner, mix, policy in product(
            self.datasets, self.partitioners, self.mixes, self.policies
        ):
            run_config = {
                "export-onnx": False,  # a sweep compares; export only if asked
                **overrides,
                "dataset": dataset,
                "partitioner": partitioner,
                "modality-mix": mix,
                **policy_keys(policy),
                "results-dir": str(root),
            }
            resolved = resolve_preset({**defaults, **run_config}, defaults, app_dir)
            config = ExperimentConfig.from_run_config(resolved, defaults)
            check_data(config)
            if policy == CENTRALIZED:
                config = replace(config, policy=Policy(CENTRALIZED, frozenset()))
                resolved = {**resolved, "aggregation": CENTRALIZED}
            cells.append(Cell(run_config, resolved, config, defaults))
        return cells


@dataclass
class SweepReport:
    """What a sweep did: completed experiment per cell name, skipped and failed
    cells, and the comparisons written at the end."""

    completed: dict[str, Path] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, RunOutcome] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = round(width * done / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _run_centralized(cell: Cell) -> RunOutcome:
    """Train ``cell``'s centralized baseline here, its outcome told as a run's."""
    # torch: only for such a cell
    from blossom_app.tools.centralized import run_centralized

    try:
        run_centralized(cell.config, cell.resolved)
    except Exception:  # a failed cell is reported and the sweep goes on
        return RunOutcome(None, "failed", traceback.format_exc())
    return RunOutcome(None, "finished:completed", "")


def run_sweep(
    cells: Sequence[Cell],
    app_dir: Path,
    root: Path,
    *,
    env: Mapping[str, str] | None = None,
    cpus_per_client: int = 1,
    progress: Callable[[str], None] = print,
) -> SweepReport:
    """Run every unfinished cell with ``flwr run`` (simulation, one SuperNode per
    client of the cell's mix; a ``centralized`` cell in this process), then
    compare what is complete.

    A failed cell is reported and the sweep goes on; ``progress`` gets one line
    per event.
    """
    report = SweepReport()
    durations: list[float] = []
    for index, cell in enumerate(cells):
        bar = _bar(index, len(cells))
        if (done := cell.finished(root)) is not None:
            report.completed[cell.name] = done
            report.skipped.append(cell.name)
            progress(f"{bar} {cell.name}: already done ({done.name}), skipped")
            continue
        left = fmean(durations) * (len(cells) - index) if durations else 0.0
        eta = f", about {_duration(left)} left" if durations else ""
        run_config = cell.run_config
        if cell.config.policy.name != CENTRALIZED and (
            resumed := cell.interrupted(root)
        ):
            run_config = {**run_config, "resume": str(resumed)}
            progress(f"{bar} {cell.name}: resuming {resumed.name}{eta}")
        else:
            progress(f"{bar} {cell.name}: running{eta}")
        start = time.monotonic()
        if cell.config.policy.name == CENTRALIZED:
            outcome = _run_centralized(cell)
        else:
            outcome = run_app(
                app_dir,
                run_config,
                num_supernodes=cell.config.mix.num_clients,
                cpus_per_client=cpus_per_client,
                env=env,
            )
        durations.append(time.monotonic() - start)
        done = cell.finished(root)
        if outcome.ok and done is not None:
            report.completed[cell.name] = done
            progress(f"{bar} {cell.name}: done in {_duration(durations[-1])}")
        else:
            report.failed[cell.name] = outcome
            note = f"; its results are complete in {done}" if done else ""
            progress(f"{bar} {cell.name}: FAILED ({outcome.status}{note})")
    progress(
        f"{_bar(len(cells), len(cells))} {len(report.completed)} complete "
        f"({len(report.skipped)} skipped), {len(report.failed)} failed"
    )
    if report.completed:
        report.comparisons = compare(list(report.completed.values()))
    return report
