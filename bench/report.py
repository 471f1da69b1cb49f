"""The headline rows (issue 26): the app's default on the report seeds 45-47.

Run once, after ``bench/selection.py`` chose the default on seeds 42-44. Watch,
both mixes (3-3-4, then 5-5-0), splits natural, iid and dirichlet, 60 rounds, 3
runs (seeds 45, 46, 47), export off; per mix and split: the app's default
policy (``[tool.flwr.app.config]``, whatever it is now), ``local``,
``full-model`` and centralized, trained under the clipped recipe as
``bench/personalization.py`` trains it (``CENTRALIZED_WITH``: the default
recipe's pooled training collapses, and a centralized cell costs three
federated ones, one model per modality set on every client's windows), then
``private-head-fusion`` where it is not the default (the best fixed policy on
natural and dirichlet at selection). The cells of
``bench/personalization.py``, in their own root so that they never merge with
the selection rows.

The table is ``bench/personalization.py``'s (seconds per round included: the
default's extra cost next to its accuracy); below it, the selection's rule
per mix and split (``selection.verdict``), which also goes into README.md
between its markers.

Resumable like ``bench/personalization.py``: results under ``--root`` (default
``bench/results/report``), summaries copied to ``bench/report/`` (committed).

Usage: python bench/report.py [--quick] [--mixes 3-3-4 5-5-0] [--splits ...]
       [--report-only] [--out FILE]
``--quick``: 2 rounds, 1 run, the first mix and split, under its own root; the
README is left alone (minutes: it checks that the bench works).
"""

from pathlib import Path

import harness
import personalization as bench
import selection

from blossom_app.common.policies import CENTRALIZED

NAME = "report"
TITLE = "The default on the report seeds 45-47 (`bench/report.py`)"
KEPT = harness.BENCH / "report"
#: What every report cell runs with (the seeds 45, 46, 47).
REPORT = {"num-server-rounds": 60, "num-runs": 3, "seed": 45, "export-onnx": False}
OLD_DEFAULT = "private-head-fusion"
README = harness.APP / "README.md"
MARKERS = ("<!-- report-table -->", "<!-- /report-table -->")


def stages(mixes: list[str], splits: list[str]) -> list[tuple[str, str, str, tuple]]:
    """(recipe, mix, split, policies): the required rows of every mix and
    split first, then the old default where it is not the default."""
    required = [
        ("default", (bench.DEFAULT_POLICY, "local", "full-model")),
        (bench.CENTRALIZED_WITH["default"], (CENTRALIZED,)),
    ]
    later = [("default", (OLD_DEFAULT,))] * (bench.DEFAULT_POLICY != OLD_DEFAULT)
    return [
        (recipe, mix, split, policies)
        for group in (required, later)
        for mix in mixes
        for split in splits
        for recipe, policies in group
    ]


def verdicts(measured: dict[tuple[str, str, str], dict[str, dict]]) -> list[dict]:
    """The selection's rule for the default policy, per mix and split where
    its row, ``local`` and a centralized row have finished."""
    found = []
    for (recipe, mix, split), cells in measured.items():
        if recipe != "default" or bench.DEFAULT_POLICY not in cells:
            continue
        central = bench.centralized(measured, recipe, mix, split)
        if "local" not in cells or central != central:
            continue
        row = cells[bench.DEFAULT_POLICY]  # itself among the fixed ones, if fixed
        checks = selection.verdict(split, row, cells, central)
        accuracy = bench.pm(row[f"{selection.ACC}_mean"], row[f"{selection.ACC}_std"])
        missing = [p for p in selection.FIXED if p not in cells]
        found.append(
            {
                "mix": mix,
                "split": split,
                "accuracy": accuracy,
                "fixed_not_run": missing,
                **checks,
            }
        )
    return found


def check_words(check: str, split: str) -> str:
    """A check of ``selection.verdict`` in the README's words: on natural,
    the ``local`` check asks "at least as good, within the runs' spread"."""
    if check == "beats_local" and split == "natural":
        return "as good as local"
    return check.replace("_", " ")


def readme_table(found: list[dict], expected: list[tuple[str, str]]) -> str:
    """The README's headline: the default per mix and split, and the rule;
    below it, the (mix, split) pairs of ``expected`` not judged yet."""
    rows = [
        [
            v["mix"],
            v["split"],
            v["accuracy"],
            bench.points(v["vs_centralized"]),
            f"{bench.points(v['vs_best_fixed'])} ({v['best_fixed']})",
            bench.points(v["vs_local"]),
            ", ".join(check_words(c, v["split"]) for c in selection.CHECKS if v[c])
            or "none",
        ]
        for v in found
    ]
    header = [
        "mix",
        "split",
        f"`{bench.DEFAULT_POLICY}` accuracy (seeds 45-47)",
        "vs centralized (points)",
        "vs best fixed policy (points)",
        "vs local (points)",
        "checks met (target: all three)",
    ]
    table = harness.markdown_table(header, rows)
    judged = {(v["mix"], v["split"]) for v in found}
    pending = [
        f"{mix} {split}" for mix, split in expected if (mix, split) not in judged
    ]
    notes = []
    if pending:
        notes.append(
            f"Not measured yet (the report has not finished): {', '.join(pending)}."
        )
    partial = [
        f"{v['mix']} {v['split']} ({', '.join(v['fixed_not_run'])} not run yet)"
        for v in found
        if v["fixed_not_run"]
    ]
    if partial:
        notes.append(
            f"The best fixed policy is the best of those run so far on "
            f"{'; '.join(partial)}."
        )
    return "\n\n".join([table, " ".join(notes)] if notes else [table])


def main() -> None:
    parser = harness.parser(NAME, __doc__)
    parser.add_argument("--mixes", nargs="+", default=list(bench.MIXES))
    parser.add_argument("--splits", nargs="+", default=list(bench.SPLITS))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--root", type=Path, default=harness.BENCH / "results" / NAME)
    args = parser.parse_args()
    host, now = harness.machine(), harness.code_version()
    overrides, root = REPORT, args.root
    if args.quick:  # checks the bench works: its own root, nothing kept or shown
        overrides = {**REPORT, "num-server-rounds": 2, "num-runs": 1}
        args.mixes, args.splits = args.mixes[:1], args.splits[:1]
        root = root.with_name(root.name + "-quick")
    else:
        bench.keep(KEPT, root)
    measured: dict[tuple[str, str, str], dict[str, dict]] = {}
    for recipe, mix, split, policies in stages(args.mixes, args.splits):
        paths = bench.run_cells(
            recipe,
            mix,
            split,
            policies,
            overrides,
            root / recipe,
            run=not args.report_only,
        )
        if not args.quick:
            bench.keep(root, KEPT)
        cells = measured.setdefault((recipe, mix, split), {})
        cells.update({p: bench.finals(path) for p, path in paths.items()})
        table, _ = bench.summarize(measured, now)
        found = verdicts(measured)
        headline = readme_table(
            found, [(mix, split) for mix in args.mixes for split in args.splits]
        )
        intro = (
            f"Watch, mixes {' and '.join(args.mixes)}, "
            f"{overrides['num-server-rounds']} rounds, {overrides['num-runs']} "
            "run(s) per cell (seeds 45-47, not used to choose), export off; "
            f"the app's default policy (`{bench.DEFAULT_POLICY}`), chosen on "
            "seeds 42-44 by `bench/selection.py`, with the rows it is judged "
            "against. Columns as in the personalization table; seconds per round "
            "are the wall time of a round's phases, mean over rounds and runs. "
            "Below: issue 26's "
            "checks for the default, per mix and split (README.md shows the same)."
        )
        harness.report(
            args,
            TITLE,
            intro,
            table + "\n\n" + headline,
            host,
            {"verdicts": found},
        )
        if not args.quick:
            harness.replace_between(README, MARKERS, headline)
        print(f"{NAME}: {recipe}/{mix}/{split}/{'+'.join(policies)} done", flush=True)


if __name__ == "__main__":
    main()
