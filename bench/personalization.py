"""Does the federation give each client a better model than training alone?

The app's default policy (read from ``[tool.flwr.app.config]``;
``private-head-fusion`` when the rows of seeds 42-44 ran), ``full-model``, adaptive
personalization over every block (``full-model+adaptive``) and ``local`` (every
block private: training alone, the same app, data, model and schedule) run as
``blossom sweep`` cells, with 3 runs each (seeds 42, 43, 44); the centralized
baseline (``blossom centralized``: one model per modality set on the pooled
train windows, each client evaluated on its own test split) runs with the same
config. Both recipes: the app's default (per-client input normalization, 3
local epochs per round) and the paper's (``preset = "paper"``: raw inputs, 1
local epoch). The default recipe's centralized baseline runs with gradient
clipping (``default-clipped``: ``max-grad-norm = 1``): pooled training
collapses without it. Then, as ablations, the default recipe changed once
(clipped; 1 local epoch; raw inputs), default policy and local only. Last, the
required rows and adaptive again on mix 5-5-0 (exclusive modalities: 5
accelerometer-only and 5 gyroscope-only clients; the paper reports its largest
gain there). Watch
data, mix 3-3-4 (3 accelerometer-only, 3 gyroscope-only, 4 with both), 60
rounds, splits natural (one subject per client), iid and dirichlet (alpha 0.5);
export off.

Per recipe, split and policy: final accuracy and macro-F1 (example-weighted over
clients), mean +- std over the 3 runs; the gain over ``local`` in points; the
relative gain over ``full-model`` (the paper reports +18.7 % on 3-3-4 and
+37.7 % on 5-5-0); the gap
to centralized in points. Target (issue 9): with the default recipe the default
policy beats ``local`` on every split by more than the runs' spread and comes
within 5 points of centralized.

Resumable: results stay under ``--root`` (default
``bench/results/personalization``, one folder per recipe), a finished cell is
never run again, and RESULTS.md's section is rewritten after every stage, so an
interrupted bench keeps what it measured and picks up where it stopped (and the
table of ``docs/personalization.md``, between its markers). The
summaries of finished experiments are also copied to ``bench/personalization/``
(committed), from which a bench on another machine resumes. Cells
run in order of importance (see ``stages``): the rows the target needs for
both recipes first, then adaptive personalization and the ablations. The full
size takes hours on 2 cores.

Usage: python bench/personalization.py [--quick] [--recipes default paper ...]
       [--mixes 3-3-4 5-5-0] [--splits natural iid dirichlet] [--root DIR]
       [--out FILE] [--report-only]
``--quick``: mix 3-3-4, natural split, 2 rounds, 1 run, private-head-fusion, local and
centralized, the recipes given (default: the default recipe only; a few minutes).
"""

import math
import shutil
import time
from pathlib import Path

import harness

from blossom_app.common.config import ExperimentConfig
from blossom_app.common.policies import CENTRALIZED, is_fixed_federated
from blossom_app.common.presets import app_defaults
from blossom_app.reporting.compare import Experiment, final
from blossom_app.reporting.csv_files import number, read_rows
from blossom_app.reporting.layout import (
    AGGREGATED,
    CONFIG,
    MODALITIES,
    TIMING,
    find_experiments,
    is_complete,
    run_dirs,
)
from blossom_app.tools.flwr_runner import this_environment
from blossom_app.tools.sweep import SweepGrid, run_sweep

NAME = "personalization"
TITLE = "Personalization vs training alone (`bench/personalization.py`)"
#: The finished experiments' summaries, kept in the repository: a bench on a
#: fresh machine starts from them instead of from nothing.
KEPT = harness.BENCH / "personalization"
#: The document that shows the table (and the target verdicts) between markers.
TABLE_DOC = harness.APP / "docs" / "personalization.md"
TABLE_START, TABLE_END = (
    "<!-- personalization-table -->",
    "<!-- /personalization-table -->",
)
RECIPES = {
    "default": {},
    "paper": {"preset": "paper"},
    # the default recipe with each step's gradient clipped to norm 1: pooled
    # (centralized) training with the default recipe collapses without it
    "default-clipped": {"max-grad-norm": 1.0},
    # the default recipe less one of its two changes (the ablation)
    "default-1-epoch": {"local-epochs": 1},
    "default-raw-inputs": {"normalize-inputs": False},
}
#: The recipe a main recipe's centralized baseline runs with, where not its
#: own: pooled training with the default recipe collapses (natural, run 0:
#: 0.187), clipped it does not, and the baseline is what the data allows.
CENTRALIZED_WITH = {"default": "default-clipped"}
#: Recipes run only with the default policy and local.
ABLATIONS = ("default-clipped", "default-1-epoch", "default-raw-inputs")
SPLITS = ("natural", "iid", "dirichlet")
#: The app's default policy (``[tool.flwr.app.config]``), whatever it is now.
DEFAULT_POLICY = ExperimentConfig.from_run_config(app_defaults()).policy.name
#: The default first; private-head-fusion was the default when the rows ran.
POLICIES = tuple(
    dict.fromkeys(
        [
            DEFAULT_POLICY,
            "private-head-fusion",
            "local",
            "full-model",
            "full-model+adaptive",
        ]
    )
)
#: 3 acc-only, 3 gyro-only and 4 acc+gyro clients (incomplete modalities; the
#: target's mix); 5 acc-only and 5 gyro-only (exclusive modalities).
MIXES = ("3-3-4", "5-5-0")
METRICS = ("weighted_accuracy", "weighted_macro_f1")
#: The paper's gain of block-wise personalization over full-model, per mix.
PAPER_GAIN_PCT = {"3-3-4": 18.7, "5-5-0": 37.7}


def run_cells(
    recipe: str,
    mix: str,
    split: str,
    policies: tuple[str, ...],
    overrides: dict,
    root: Path,
    run: bool = True,
) -> dict[str, Path]:
    """Run (or find; only find unless ``run``) the cells of one recipe and
    split, ``centralized`` among them; policy -> finished experiment. Each
    experiment that finishes here is stamped with the code it ran
    (``harness.stamp``)."""
    version, started = harness.code_version(), time.time()
    grid = SweepGrid(("watch",), (split,), (mix,), policies)
    cells = grid.cells(harness.APP, root, {**overrides, **RECIPES[recipe]})
    # found ones are left out of the sweep: a summary restored from KEPT has no
    # per-run logs for the sweep's comparison, and needs no Flower home
    done = {c.config.policy.name: c.finished(root) for c in cells}
    todo = [c for c in cells if done[c.config.policy.name] is None]
    if run and todo:
        env, home = harness.isolated_env(root.with_name(root.name + "-flwr"))
        # this Python environment's bin first on PATH, Flower's per-run installs off
        env = {**env, **{k: v for k, v in this_environment().items() if k not in env}}
        env["PATH"] = this_environment()["PATH"]
        try:
            report = run_sweep(todo, harness.APP, root, env=env)
        finally:
            harness.stop_processes_mentioning(str(home))
        done |= {c.config.policy.name: report.completed.get(c.name) for c in todo}
    finished = {policy: path for policy, path in done.items() if path is not None}
    for path in finished.values():
        new = (path / AGGREGATED).stat().st_mtime >= started
        if new and harness.read_stamp(path) is None:
            harness.stamp(path, version)
    return finished


def stages(
    recipes: list[str], mixes: list[str], splits: list[str]
) -> list[tuple[str, str, str, tuple]]:
    """(recipe, mix, split, policies) in order of importance: first the rows
    the target needs (mix 3-3-4), for each main recipe in turn (the default
    policy and ``local``, then centralized, under ``CENTRALIZED_WITH``'s
    recipe, then ``full-model``); then adaptive personalization and the
    ablations (the default recipe changed once: default policy and local
    only); then the required rows and adaptive on the other mixes."""
    required = ((DEFAULT_POLICY, "local"), (CENTRALIZED,), ("full-model",))
    adaptive = ("full-model+adaptive",)
    main = [r for r in recipes if r not in ABLATIONS]  # in the order given
    first, *others = [m for m in MIXES if m in mixes]  # the target's mix first
    later = [(r, first, (adaptive,)) for r in main] + [
        (r, first, required[:1]) for r in recipes if r in ABLATIONS
    ]
    return [
        (CENTRALIZED_WITH.get(recipe, recipe) if CENTRALIZED in group else recipe,
         mix, split, group)
        for recipe, mix, groups in [
            *((r, first, required) for r in main),
            *later,
            *((r, m, (*required, adaptive)) for m in others for r in main),
        ]
        for group in groups
        for split in splits
    ]  # fmt: skip


def keep(source: Path, target: Path) -> None:
    """Copy the summary files of every finished experiment under ``source`` that
    ``target`` lacks (its config, averaged metrics and completion marker), to
    the same place under ``target``."""
    complete, _ = find_experiments([source]) if source.exists() else ([], [])
    for experiment in complete:
        copy = target / experiment.relative_to(source.resolve())
        if is_complete(copy):
            continue
        copy.mkdir(parents=True, exist_ok=True)
        timings = [Path(run.name, TIMING) for run in run_dirs(experiment)]
        names = (CONFIG, MODALITIES, harness.STAMP, *timings, AGGREGATED)
        for name in names:  # the completion marker last
            if (experiment / name).is_file():  # no stamp: ran before stamps
                (copy / name).parent.mkdir(exist_ok=True)
                shutil.copyfile(experiment / name, copy / name)


def replace_doc_table(table: str, verdicts: list[dict], doc: Path = TABLE_DOC) -> None:
    """Put the table and the target verdicts between ``doc``'s markers."""
    lines = [table, ""]
    for v in verdicts:
        central = v["gap_to_centralized"]
        central = (
            "centralized not run yet"
            if math.isnan(central)
            else f"vs centralized {points(central)} points"
        )
        lines.append(
            f"- {v['split']}: default policy vs local {points(v['gain_over_local'])} "
            f"points (runs' spread {v['spread'] * 100:.1f}); {central}."
        )
    harness.replace_between(doc, (TABLE_START, TABLE_END), "\n".join(lines))


def finals(path: Path) -> dict[str, object]:
    """An experiment's final metrics (mean and std over runs), its runs,
    rounds, code version and seconds per round."""
    experiment = Experiment.load(path)
    values = {
        "runs": experiment.runs,
        "rounds": experiment.rounds,
        "version": harness.read_stamp(path),
        "seconds_per_round": seconds_per_round(path),
    }
    for metric in METRICS:
        _, mean, std = final(experiment.aggregated, metric)
        values[f"{metric}_mean"], values[f"{metric}_std"] = mean, std
    return values


def seconds_per_round(experiment: Path) -> float:
    """Mean wall seconds of a round (every phase of ``timing.csv``) over the
    rounds of every run; NaN where no run kept its timing (rows kept before
    timings were)."""
    rounds = []
    for run in run_dirs(experiment):
        if (run / TIMING).is_file():
            for row in read_rows(run / TIMING):
                phases = [number(cell) for key, cell in row.items() if key != "round"]
                rounds.append(sum(v for v in phases if not math.isnan(v)))
    return harness.mean(rounds)


def pm(mean: float, std: float) -> str:
    """``mean ± std``; the mean alone for one run (no spread)."""
    if math.isnan(mean):
        return "-"
    return f"{mean:.3f}" + ("" if math.isnan(std) else f" ± {std:.3f}")


def points(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 100:+.1f}"


def seconds(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def centralized(
    measured: dict[tuple[str, str, str], dict[str, dict]],
    recipe: str,
    mix: str,
    split: str,
) -> float:
    """``recipe``'s centralized limit on ``mix`` and ``split``: the better of
    its own centralized row and ``CENTRALIZED_WITH``'s recipe's, of those
    finished (NaN before either has)."""
    limits = [
        measured.get((r, mix, split), {}).get(CENTRALIZED, {}).get(f"{METRICS[0]}_mean")
        for r in (recipe, CENTRALIZED_WITH.get(recipe, recipe))
    ]
    return max((v for v in limits if v is not None), default=math.nan)


def summarize(
    measured: dict[tuple[str, str, str], dict[str, dict]],
    now: dict[str, object],
) -> tuple[str, list]:
    """The markdown table and the target verdicts (default recipe, mix
    3-3-4). Each recipe's rows compare with its centralized baseline: the
    better of its own and ``CENTRALIZED_WITH``'s recipe's, where it has one;
    and with the best fixed policy of the recipe, mix and split. A row whose
    code differs from ``now``'s (``harness.code_version``) says so."""
    rows, verdicts = [], []
    acc = "weighted_accuracy"

    order = {recipe: index for index, recipe in enumerate(RECIPES)}
    for (recipe, mix, split), cells in sorted(
        measured.items(),
        key=lambda item: (
            MIXES.index(item[0][1]),
            order[item[0][0]],
            SPLITS.index(item[0][2]),
        ),
    ):
        local = cells.get("local", {}).get(f"{acc}_mean", math.nan)
        full = cells.get("full-model", {}).get(f"{acc}_mean", math.nan)
        central = centralized(measured, recipe, mix, split)
        fixed = {p: v[f"{acc}_mean"] for p, v in cells.items() if is_fixed_federated(p)}
        best = max(fixed, key=fixed.__getitem__, default=None)
        for policy in (*POLICIES, CENTRALIZED):
            if policy not in cells:
                continue
            v = cells[policy]
            mean = v[f"{acc}_mean"]
            gain_full = (mean - full) / full * 100 if full == full else math.nan
            rows.append(
                [
                    recipe,
                    mix,
                    split,
                    policy,
                    v["runs"],
                    pm(mean, v[f"{acc}_std"]),
                    pm(v["weighted_macro_f1_mean"], v["weighted_macro_f1_std"]),
                    seconds(v.get("seconds_per_round", math.nan)),
                    points(mean - local) if policy != "local" else "(base)",
                    "(base)"
                    if policy == "full-model"
                    else ("-" if math.isnan(gain_full) else f"{gain_full:+.1f} %"),
                    points(mean - central) if policy != CENTRALIZED else "(limit)",
                    "-"
                    if best is None
                    else ("(best)" if policy == best else points(mean - fixed[best])),
                    harness.code_label(v["version"], now),
                ]
            )
        default = cells.get(DEFAULT_POLICY)
        if recipe == "default" and mix == MIXES[0] and default and "local" in cells:
            spread = max(default[f"{acc}_std"], cells["local"][f"{acc}_std"])
            margin = default[f"{acc}_mean"] - local
            verdicts.append(
                {
                    "split": split,
                    "gain_over_local": margin,
                    "spread": spread,
                    "beats_local": margin > spread,
                    "gap_to_centralized": default[f"{acc}_mean"] - central,
                    "within_5_points": default[f"{acc}_mean"] >= central - 0.05,
                }
            )
    header = [
        "recipe",
        "mix",
        "split",
        "policy",
        "runs",
        "accuracy",
        "macro-F1",
        "seconds per round",
        "vs local (points)",
        "vs full-model (paper: "
        + ", ".join(f"+{gain} % on {mix}" for mix, gain in PAPER_GAIN_PCT.items())
        + ")",
        "vs centralized (points)",
        "vs best fixed policy (points)",
        "code (vs this checkout's)",
    ]
    return harness.markdown_table(header, rows), verdicts


def main() -> None:
    parser = harness.parser(NAME, __doc__)
    parser.add_argument("--recipes", nargs="+", default=None)
    parser.add_argument("--mixes", nargs="+", default=list(MIXES), choices=MIXES)
    parser.add_argument("--splits", nargs="+", default=list(SPLITS))
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: write the table of what has finished",
    )
    parser.add_argument("--root", type=Path, default=harness.BENCH / "results" / NAME)
    args = parser.parse_args()
    if args.quick:
        overrides = {"num-server-rounds": 2, "num-runs": 1}
        splits, policies = ["natural"], (DEFAULT_POLICY, "local", CENTRALIZED)
        root = args.root.with_name(args.root.name + "-quick")
    else:
        overrides = {"num-server-rounds": 60, "num-runs": 3}
        splits, policies, root = args.splits, (*POLICIES, CENTRALIZED), args.root
    overrides["export-onnx"] = False
    recipes = args.recipes or (["default"] if args.quick else list(RECIPES))
    host, now = harness.machine(), harness.code_version()
    if not args.quick:
        keep(KEPT, root)
    mixes = MIXES[:1] if args.quick else args.mixes
    measured: dict[tuple[str, str, str], dict[str, dict]] = {}
    verdicts: list[dict] = []
    for recipe, mix, split, group in stages(recipes, mixes, splits):
        group = tuple(p for p in group if p in policies)
        if not group:
            continue
        paths = run_cells(
            recipe,
            mix,
            split,
            group,
            overrides,
            root / recipe,
            run=not args.report_only,
        )
        if not args.quick:
            keep(root, KEPT)
        cells = measured.setdefault((recipe, mix, split), {})
        cells.update({p: finals(path) for p, path in paths.items()})
        table, verdicts = summarize(measured, now)
        intro = (
            f"Watch, mixes {' and '.join(mixes)}, "
            f"{overrides['num-server-rounds']} rounds, "
            f"{overrides['num-runs']} run(s) per cell (seeds 42...), export off. "
            "Final accuracy and macro-F1 example-weighted over clients, mean ± "
            "std over runs. Recipes: default = the app's defaults (per-client "
            "input normalization, 3 local epochs), paper = preset 'paper' (raw "
            "inputs, 1 local epoch), default-clipped = the default recipe with "
            "max-grad-norm 1: pooled, centralized training with the default "
            "recipe collapses without it (run 0 on natural ended at 0.187), so the "
            "default recipe's centralized baseline is default-clipped's. Rows "
            "appear as cells finish."
        )
        if args.report_only:
            intro += (
                " The cells ran with `python bench/personalization.py` (resumable);"
                " this table summarizes those finished so far."
            )
        data = {"measured": {"/".join(k): v for k, v in measured.items()}}
        out = harness.report(
            args, TITLE, intro, table, host, {**data, "verdicts": verdicts}
        )
        if not args.quick:
            replace_doc_table(table, verdicts)
        print(
            f"{NAME}: {recipe}/{mix}/{split}/{'+'.join(group)} done; {out}", flush=True
        )
    for v in verdicts:
        print(
            f"{NAME}: {v['split']}: default policy vs local "
            f"{v['gain_over_local'] * 100:+.1f} points (spread "
            f"{v['spread'] * 100:.1f}), vs centralized "
            f"{points(v['gap_to_centralized'])} points"
        )


if __name__ == "__main__":
    main()
