"""The selection of the default: its candidates are pre-registered, and its
rule chooses as the docs say, also when no candidate meets every check."""

import importlib
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1]


@pytest.fixture
def selection(monkeypatch):
    monkeypatch.syspath_prepend(str(APP / "bench"))
    yield importlib.import_module("selection")
    for module in ("selection", "personalization", "harness"):
        sys.modules.pop(module, None)


def test_every_selection_candidate_is_pre_registered_in_the_docs(selection):
    text = (APP / "docs" / "personalization.md").read_text()
    table = text.split("## Choosing the default")[1].split("\n\n")[2]
    listed = [line.split("`")[1] for line in table.splitlines()[2:]]
    assert listed == list(selection.CANDIDATES)  # the same, in the order they run
    for name, (policy, overrides) in selection.CANDIDATES.items():
        [row] = [line for line in table.splitlines() if line.startswith(f"| `{name}`")]
        assert f"`{policy}`" in row
        for key, value in overrides.items():
            assert f"{key}={value!r}" in row, key


def verdict(candidate: str, split: str, gap: float, checks: int) -> dict:
    """A candidate's verdict on a split: ``gap`` to centralized, the first
    ``checks`` of the rule's checks met."""
    return {
        "candidate": candidate,
        "split": split,
        "vs_centralized": gap,
        "within_2_points": checks >= 1,
        "as_good_as_best_fixed": checks >= 2,
        "beats_local": checks >= 3,
    }


SPLITS = ["natural", "iid", "dirichlet"]


def test_the_rule_chooses_by_checks_met_then_the_worst_split(selection):
    default, adaptive, fedavgm, prox, other = list(selection.CANDIDATES)[:5]
    verdicts = [
        # the most checks (8), but one split not finished: not considered
        *(verdict(prox, s, -0.01, 3) for s in SPLITS[:2]),
        verdict(default, "natural", -0.018, 3),
        verdict(default, "iid", -0.084, 1),
        verdict(default, "dirichlet", -0.054, 2),
        # as many checks as the default (6), its worst split nearer centralized
        *(
            verdict(adaptive, s, gap, 2)
            for s, gap in zip(SPLITS, (-0.02, -0.05, -0.057), strict=True)
        ),
        # fewer checks (5), though its worst split is the nearest of all
        *(
            verdict(fedavgm, s, -0.03, checks)
            for s, checks in zip(SPLITS, (2, 2, 1), strict=True)
        ),
    ]
    choice = " ".join(selection.choose(verdicts, SPLITS, stopped=[]).split())
    assert choice.startswith(f"The rule chooses `{adaptive}` (no candidate meets all)")
    assert "6 of 9 checks" in choice and "dirichlet, is -5.7 points" in choice
    assert f"`{prox}`" not in choice

    # the same worst split: the earlier in the list wins
    tied = [v | {"vs_centralized": -0.05} for v in verdicts if v["candidate"] != prox]
    assert f"chooses `{default}`" in selection.choose(tied, SPLITS, stopped=[])
    # a stopped candidate is never chosen; one that meets everything says so
    assert f"chooses `{default}`" in selection.choose(verdicts, SPLITS, [adaptive])
    clean = [verdict(other, s, -0.01, 3) for s in SPLITS]
    chosen = " ".join(selection.choose(verdicts + clean, SPLITS, stopped=[]).split())
    assert f"`{other}` (meets every check): 9 of 9" in chosen
    assert selection.choose(verdicts[:2], SPLITS, stopped=[]) is None
