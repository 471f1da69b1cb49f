"""The policy registry: each policy declared once, every consumer reads it.

A new policy is one ``PolicySpec`` entry: these tests register one (or move a
baseline) and check that ``make_policy``, ``blossom info``, the sweep's default
grid, the paper's grid presets, the comparison's order and gains and the
plots' colours all follow, and that no other module spells a policy's name.
"""

import ast
from dataclasses import replace
from pathlib import Path

import pytest
from results_helpers import make_experiment

from blossom_app.common.blocks import FUSION, NORMALIZATION
from blossom_app.common.policies import (
    ADAPTIVE_SUFFIX,
    REGISTRY,
    Baseline,
    PolicySpec,
    baseline,
    make_policy,
    policy_keys,
    policy_order,
    swept_policies,
)
from blossom_app.common.presets import app_defaults, grid_presets, resolve_preset
from blossom_app.errors import ConfigError
from blossom_app.reporting.compare import Experiment, comparison_table, format_text
from blossom_app.reporting.output import complete_experiment
from blossom_app.reporting.plots import BASELINE_COLOR, policy_colors
from blossom_app.tools.info import describe_app
from blossom_app.tools.sweep import SweepGrid

PACKAGE = Path(__file__).parents[1] / "blossom_app"
NEW = "private-fusion"


@pytest.fixture
def new_policy(monkeypatch):
    """One more entry, as a contributor would add it: fusion kept private, in
    the paper's grid and the default sweep, compared first."""
    spec = PolicySpec(NEW, frozenset({FUSION}), rank=-1, paper=True, swept=True)
    monkeypatch.setitem(REGISTRY, NEW, spec)
    return spec


@pytest.fixture
def moved_baseline(monkeypatch):
    """The registry with ``private-head`` as the baseline of the gains."""
    for name, kind in (("full-model", None), ("private-head", Baseline.GAINS)):
        monkeypatch.setitem(REGISTRY, name, replace(REGISTRY[name], baseline=kind))


def experiments(root: Path, policies: list[str]) -> list[Experiment]:
    """One complete experiment per policy, mix 3-3-4, accuracies 0.5, 0.6..."""
    paths = [
        make_experiment(root, "3-3-4", policy, [0.5 + 0.1 * i])
        for i, policy in enumerate(policies)
    ]
    for path in paths:
        complete_experiment(path)
    return [Experiment.load(path) for path in paths]


def test_the_registry_keeps_todays_policies_order_and_baselines():
    listed = [line.split()[0] for line in describe_app().splitlines()]
    policies = listed[listed.index("Policies") + 1 : listed.index("Fusions:")]
    assert policies == [
        "full-model",
        "private-head",
        "private-head-fusion",
        "local",
        "custom",
        "(every",
        "centralized",
    ]
    swept = ["full-model", "private-head", "private-head-fusion", "local"]
    assert swept_policies() == swept
    names = ["private-head", "custom", "centralized", "local", "full-model+adaptive"]
    assert sorted([*names, "full-model"], key=policy_order) == [
        "full-model",
        "local",
        "centralized",
        "custom",
        "full-model+adaptive",
        "private-head",
    ]
    assert [baseline(kind) for kind in Baseline] == [
        "full-model",
        "local",
        "centralized",
    ]
    assert policy_keys(f"local{ADAPTIVE_SUFFIX}") == {
        "aggregation": "local",
        "personalization": "adaptive",
    }
    # a fixed policy's name says so, whatever the app's default personalization
    assert policy_keys("full-model") == {
        "aggregation": "full-model",
        "personalization": "fixed",
    }
    assert policy_keys("centralized") == {}


def test_a_registered_policy_reaches_every_consumer(new_policy, tmp_path):
    assert make_policy(NEW, "", ["acc", "gyro"]).private == {FUSION, NORMALIZATION}
    with pytest.raises(ConfigError, match=NEW):
        make_policy("private-fusions", "", ["acc"])
    info = describe_app().splitlines()
    note = next(i for i, line in enumerate(info) if line.startswith("  (every"))
    assert info.index(f"  {NEW:<20} {FUSION}") < note  # an aggregation policy
    assert SweepGrid().policies == (
        "full-model",
        "private-head",
        "private-head-fusion",
        "local",
        NEW,
    )
    defaults = app_defaults()
    cell = f"dirichlet-5-5-0-{NEW}"
    assert cell in grid_presets("ucihar")
    resolved = resolve_preset({**defaults, "dataset": "ucihar", "preset": cell})
    assert (resolved["aggregation"], resolved["partitioner"]) == (NEW, "dirichlet")
    table = comparison_table(experiments(tmp_path, ["full-model", "local", NEW]))
    assert [row["policy"] for row in table] == [NEW, "full-model", "local"]
    assert policy_colors(["full-model", NEW])["full-model"] == BASELINE_COLOR


def test_the_baseline_of_gains_and_its_colour_are_the_registrys(
    moved_baseline, tmp_path
):
    table = comparison_table(experiments(tmp_path, ["full-model", "private-head"]))
    [full, head] = table  # private-head is the base now; its gain is 0
    assert head["weighted_accuracy_gain_pct"] == 0.0
    assert full["weighted_accuracy_gain_pct"] == pytest.approx(-100 / 6)
    text = format_text(table, "t")
    assert "vs private-head" in text and "vs full-model" not in text
    colors = policy_colors(["full-model", "private-head"])
    assert colors["private-head"] == BASELINE_COLOR != colors["full-model"]


def test_no_module_but_the_registry_spells_a_policy_name():
    """A policy's name as a string constant anywhere else is a second
    declaration (a command named like the baseline it runs is not)."""
    allowed = {("tools/cli.py", "centralized")}  # the `blossom centralized` command
    names = {*REGISTRY, ADAPTIVE_SUFFIX}
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module == "common/policies.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and node.value in names
                and (module, node.value) not in allowed
            ):
                spelled.append(f"{module}:{node.lineno} {node.value!r}")
    assert not spelled, spelled


def test_each_baseline_is_one_policy_and_the_grid_aggregates():
    for kind in Baseline:
        assert sum(spec.baseline is kind for spec in REGISTRY.values()) == 1
    assert all(spec.aggregation for spec in REGISTRY.values() if spec.paper)
    assert all(name == spec.name for name, spec in REGISTRY.items())
