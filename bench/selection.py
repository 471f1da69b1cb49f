"""Choosing the app's default recipe (issue 26): pre-registered candidates,
selected on seeds 42-44; the report on seeds 45-47 follows the choice.

``CANDIDATES`` are the candidates in the order they run, as
docs/personalization.md ("Choosing the default") lists them; one is added
there before it runs. Each runs on ``watch``, mix 3-3-4, splits natural, iid
and dirichlet, 60 rounds, 3 runs (seeds 42, 43, 44), export off: the cells of
``bench/personalization.py``, whose default recipe's rows (the default policy,
``full-model``, ``local``, centralized) are the references. A candidate of no
overrides is one of those rows and runs nothing.

The rule, per split: within 2 points of centralized (the better of the
default and the clipped recipe's centralized rows); at least as good as the
best fixed policy less the runs' spread; above ``local`` by more than the
spread on iid and dirichlet, and at least ``local`` less the spread on
natural. The spread is the larger of the two rows' standard deviations over
runs. Every row says which code it ran (``harness.code_version``).

Resumable like ``bench/personalization.py``: results under ``--root``
(default ``bench/results/selection``, one folder per candidate), summaries
copied to ``bench/selection/`` (committed), a finished cell never runs again.

A candidate that fails a split by far is stopped (``--stopped``): its other
splits do not run, and its finished rows stay in the table.

Usage: python bench/selection.py [--candidates NAME ...] [--splits ...]
       [--stopped NAME ...] [--report-only] [--out FILE]
"""

import math
import textwrap
from pathlib import Path

import harness
import personalization as bench

from blossom_app.common.policies import CENTRALIZED

NAME = "selection"
TITLE = "Selection of the default (`bench/selection.py`)"
KEPT = harness.BENCH / "selection"
MIX = "3-3-4"
#: What every selection cell runs with (the seeds 42, 43, 44).
SELECTION = {"num-server-rounds": 60, "num-runs": 3, "seed": 42, "export-onnx": False}
FEDAVGM = {"server-optimizer": "fedavgm"}
#: name -> (policy, run config overrides of the default recipe), in run order.
CANDIDATES = {
    "default": ("private-head-fusion", {}),
    "adaptive": ("full-model+adaptive", {}),
    "adaptive-fedavgm-0.5": (
        "full-model+adaptive",
        {**FEDAVGM, "server-momentum": 0.5},
    ),
    "adaptive-fedavgm-0.9": (
        "full-model+adaptive",
        {**FEDAVGM, "server-momentum": 0.9},
    ),
    "fedavgm-0.5": ("private-head-fusion", {**FEDAVGM, "server-momentum": 0.5}),
    "full-model-fedavgm-0.5": ("full-model", {**FEDAVGM, "server-momentum": 0.5}),
    "fedadam": (
        "private-head-fusion",
        {"server-optimizer": "fedadam", "server-learning-rate": 0.01},
    ),
    "adaptive-1-epoch": ("full-model+adaptive", {"local-epochs": 1}),
    "adaptive-prox": ("full-model+adaptive", {"proximal-mu": 0.01}),
}
#: The rule's margin to centralized, in accuracy.
WITHIN = 0.02
ACC = "weighted_accuracy"
#: The rule's checks, per split.
CHECKS = ("within_2_points", "as_good_as_best_fixed", "beats_local")


#: The fixed policies a candidate must be as good as.
FIXED = ("private-head-fusion", "full-model")


def verdict(split: str, row: dict, references: dict[str, dict], central: float) -> dict:
    """The rule's three checks for one candidate ``row`` on ``split``."""
    mean, std = row[f"{ACC}_mean"], row[f"{ACC}_std"]

    def spread(other: dict) -> float:
        return max(std, other[f"{ACC}_std"]) if other else math.nan

    fixed = [p for p in FIXED if p in references]
    name = max(fixed, key=lambda p: references[p][f"{ACC}_mean"], default=None)
    best = references.get(name)
    local = references.get("local")
    margin = mean - local[f"{ACC}_mean"] if local else math.nan
    # natural: at least local, within the spread; else above it by more
    floor = -spread(local) if split == "natural" else spread(local)
    return {
        "vs_centralized": mean - central,
        "within_2_points": mean >= central - WITHIN,
        "best_fixed": name,
        "vs_best_fixed": mean - best[f"{ACC}_mean"] if best else math.nan,
        "as_good_as_best_fixed": bool(best)
        and mean >= best[f"{ACC}_mean"] - spread(best),
        "vs_local": margin,
        "spread_local": spread(local),
        "beats_local": margin >= floor if split == "natural" else margin > floor,
    }


def choose(verdicts: list[dict], splits: list[str], stopped: list[str]) -> str | None:
    """The rule's choice and why, in a sentence, as docs/personalization.md
    pre-registers it:
    of the candidates finished on every split and not stopped, the one that
    meets the most checks over the splits, then the one whose worst split is
    nearest centralized, then the earlier in ``CANDIDATES``; None before any
    candidate has finished every split."""
    by_name: dict[str, list[dict]] = {}
    for v in verdicts:
        by_name.setdefault(v["candidate"], []).append(v)
    finished = {
        name: found
        for name, found in by_name.items()
        if name not in stopped and {v["split"] for v in found} >= set(splits)
    }
    if not finished:
        return None

    def met(found: list[dict]) -> int:
        return sum(bool(v[check]) for v in found for check in CHECKS)

    def worst(found: list[dict]) -> dict:
        return min(found, key=lambda v: v["vs_centralized"])

    name = min(
        finished,
        key=lambda n: (
            -met(finished[n]),
            -worst(finished[n])["vs_centralized"],
            list(CANDIDATES).index(n),
        ),
    )
    found, total = finished[name], len(CHECKS) * len(splits)
    low = worst(found)
    every = "meets every check" if met(found) == total else "no candidate meets all"
    return textwrap.fill(
        f"The rule chooses `{name}` ({every}): {met(found)} of {total} checks "
        f"met over the splits; its worst split, {low['split']}, is "
        f"{bench.points(low['vs_centralized'])} points from centralized. Considered: "
        f"{', '.join(f'`{n}`' for n in finished)}.",
        harness.LINE,
        break_on_hyphens=False,
    )


def main() -> None:
    parser = harness.parser(NAME, __doc__)
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--splits", nargs="+", default=list(bench.SPLITS))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--stopped",
        nargs="*",
        default=[],
        help="candidates out of the running: their finished cells are reported, "
        "their other cells do not run",
    )
    parser.add_argument("--root", type=Path, default=harness.BENCH / "results" / NAME)
    parser.add_argument(
        "--references",
        type=Path,
        default=harness.BENCH / "results" / bench.NAME,
        help="bench/personalization.py's --root (its default recipe's rows)",
    )
    args = parser.parse_args()
    host, now = harness.machine(), harness.code_version()
    bench.keep(KEPT, args.root)
    bench.keep(bench.KEPT, args.references)
    rows, verdicts = [], []
    references = {
        split: {
            policy: bench.finals(path)
            for policy, path in bench.run_cells(
                "default",
                MIX,
                split,
                ("private-head-fusion", "full-model", "local"),
                SELECTION,
                args.references / "default",
                run=False,
            ).items()
        }
        for split in args.splits
    }
    central = {
        split: references_central(args.references, split) for split in args.splits
    }
    for name in args.candidates:  # a candidate on every split, then the next
        for split in args.splits:
            policy, overrides = CANDIDATES[name]
            if overrides:
                found = bench.run_cells(
                    "default",
                    MIX,
                    split,
                    (policy,),
                    {**SELECTION, **overrides},
                    args.root / name,
                    run=not args.report_only and name not in args.stopped,
                )
                bench.keep(args.root, KEPT)
            else:  # the default recipe as it is: the references' row
                found = bench.run_cells(
                    "default",
                    MIX,
                    split,
                    (policy,),
                    SELECTION,
                    args.references / "default",
                    run=False,
                )
            if policy not in found:
                continue
            row = bench.finals(found[policy])
            checks = verdict(split, row, references[split], central[split])
            verdicts.append({"candidate": name, "split": split, **checks})
            rows.append(
                [
                    name,
                    split,
                    policy,
                    bench.pm(row[f"{ACC}_mean"], row[f"{ACC}_std"]),
                    bench.seconds(row["seconds_per_round"]),
                    bench.points(checks["vs_centralized"]),
                    bench.points(checks["vs_best_fixed"]),
                    bench.points(checks["vs_local"]),
                    ", ".join(
                        k.replace("_", " ")
                        for k in (
                            "within_2_points",
                            "as_good_as_best_fixed",
                            "beats_local",
                        )
                        if checks[k]
                    )
                    or "none",
                    harness.code_label(row["version"], now),
                ]
            )
            table = harness.markdown_table(
                [
                    "candidate",
                    "split",
                    "policy",
                    "accuracy (seeds 42-44)",
                    "seconds per round",
                    "vs centralized (points)",
                    "vs best fixed policy (points)",
                    "vs local (points)",
                    "checks met",
                    "code (vs this checkout's)",
                ],
                rows,
            )
            intro = (
                f"Watch, mix {MIX}, 60 rounds, 3 runs (seeds 42-44), export off; "
                "the candidates pre-registered in docs/personalization.md "
                '("Choosing the default"), the references from '
                "`bench/personalization.py`'s default recipe. Checks (issue 26): "
                "within 2 points of centralized (the better of the default and "
                "clipped recipes'), at least the best fixed policy less the runs' "
                "spread, above local by more than the spread on iid and dirichlet "
                "and at least local less the spread on natural. Rows appear as "
                "cells finish."
            )
            choice = choose(verdicts, args.splits, args.stopped)
            harness.report(
                args,
                TITLE,
                intro,
                table + ("\n\n" + choice if choice else ""),
                host,
                {"verdicts": verdicts, "choice": choice},
            )
            print(f"{NAME}: {name}/{split} done", flush=True)


def references_central(references: Path, split: str) -> float:
    """Centralized on ``split``: the better of the default and clipped recipes'."""
    values = [
        bench.finals(path)[f"{ACC}_mean"]
        for recipe in ("default", "default-clipped")
        for path in bench.run_cells(
            recipe,
            MIX,
            split,
            (CENTRALIZED,),
            SELECTION,
            references / recipe,
            run=False,
        ).values()
    ]
    return max(values, default=math.nan)


if __name__ == "__main__":
    main()
