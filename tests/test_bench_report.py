"""The report of the default (seeds 45-47): the rule per mix and split, the
README's headline between its markers, and each row's seconds per round."""

import importlib
import sys
from pathlib import Path

import pytest

from blossom_app.reporting.layout import COMPLETED_MARKER
from blossom_app.reporting.output import write_config

APP = Path(__file__).resolve().parents[1]


@pytest.fixture
def report(monkeypatch):
    monkeypatch.syspath_prepend(str(APP / "bench"))
    yield importlib.import_module("report")
    for module in ("report", "selection", "personalization", "harness"):
        sys.modules.pop(module, None)


def cell(accuracy: float, std: float = 0.01) -> dict:
    return {
        "runs": 3,
        "rounds": 60,
        "version": None,
        "seconds_per_round": 3.5,
        "weighted_accuracy_mean": accuracy,
        "weighted_accuracy_std": std,
        "weighted_macro_f1_mean": accuracy,
        "weighted_macro_f1_std": std,
    }


def test_the_rule_is_applied_per_mix_and_split_and_written_to_the_readme(
    report, tmp_path
):
    default = report.bench.DEFAULT_POLICY
    measured = {
        ("default", "3-3-4", "iid"): {
            default: cell(0.95),
            "full-model": cell(0.93),
            "local": cell(0.85),
            "centralized": cell(0.90),
        },
        ("default-clipped", "3-3-4", "iid"): {"centralized": cell(0.96)},
        ("default", "5-5-0", "natural"): {
            default: cell(0.90),
            "full-model": cell(0.95),
            "local": cell(0.905, std=0.02),
        },  # no centralized row yet: no verdict
        ("default-clipped", "5-5-0", "natural"): {"centralized": cell(0.97)},
        ("default", "5-5-0", "iid"): {default: cell(0.9), "centralized": cell(0.9)},
    }  # 5-5-0 iid: no local row yet, no verdict
    measured[("default", "5-5-0", "natural")]["centralized"] = cell(0.91)
    [iid, natural] = report.verdicts(measured)
    # only the clipped recipe's centralized row finished: still judged by it
    del measured[("default", "3-3-4", "iid")]["centralized"]
    assert report.verdicts(measured)[0]["vs_centralized"] == pytest.approx(-0.01)
    assert (iid["mix"], iid["split"]) == ("3-3-4", "iid")
    assert iid["vs_centralized"] == pytest.approx(-0.01)  # the clipped recipe's
    assert iid["within_2_points"] and iid["as_good_as_best_fixed"]
    assert iid["beats_local"]
    # natural: 5 points below full-model, within local's spread of local
    assert natural["vs_best_fixed"] == pytest.approx(-0.05)
    assert not natural["within_2_points"] and not natural["as_good_as_best_fixed"]
    assert natural["beats_local"]

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.MARKERS[0]}\nold\n{report.MARKERS[1]}\nend\n")
    expected = [("3-3-4", "iid"), ("5-5-0", "natural"), ("5-5-0", "iid")]
    table = report.readme_table([iid], expected)
    report.harness.replace_between(readme, report.MARKERS, table)
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("end\n")
    assert "| 3-3-4 | iid | 0.950 ± 0.010 | -1.0 |" in text  # then vs best fixed:
    assert "| +10.0 | within 2 points" in text  # +0.0 if the default is fixed
    assert "within 2 points, as good as best fixed, beats local |" in text
    assert "not finished): 5-5-0 natural, 5-5-0 iid." in text
    # on natural the local check asks only "as good as", and says so
    assert "| -0.5 | as good as local |" in report.readme_table([natural], [])
    # judged against full-model alone: the best fixed so far, and said so
    assert "| -1.0 | +2.0 (full-model) | +10.0 |" in text
    assert "run so far on 3-3-4 iid (private-head-fusion not run yet)." in text
    # every pair measured, a fixed policy not run: the sentence below the table
    assert "|\n\nThe best fixed policy is" in report.readme_table([iid], expected[:1])
    measured[("default", "3-3-4", "iid")]["private-head-fusion"] = cell(0.96)
    [iid, _] = report.verdicts(measured)
    assert iid["best_fixed"] == "private-head-fusion"
    assert "run so far" not in report.readme_table([iid], expected[:1])
    assert "not finished" not in report.readme_table([iid], expected[:1])


def test_the_readme_has_the_report_markers(report):
    text = (APP / "README.md").read_text()
    assert text.index(report.MARKERS[0]) < text.index(report.MARKERS[1])


def test_the_old_default_runs_last_and_only_when_it_is_not_the_default(report):
    stages = report.stages(["3-3-4", "5-5-0"], ["natural", "iid"])
    required = stages[:8]
    assert {mix for _, mix, _, _ in required} == {"3-3-4", "5-5-0"}
    assert all(
        report.bench.DEFAULT_POLICY in policies or policies == ("centralized",)
        for _, _, _, policies in required
    )
    # centralized once per mix and split, under the recipe the bench trains it
    central = [recipe for recipe, _, _, policies in stages if "centralized" in policies]
    assert central == ["default-clipped"] * 4
    old = [s for s in stages if report.OLD_DEFAULT in s[3]]
    if report.bench.DEFAULT_POLICY == report.OLD_DEFAULT:
        assert len(stages) == 8
    else:
        assert stages[8:] == old and len(old) == 4


def test_kept_summaries_carry_each_runs_timing(report, tmp_path):
    bench = report.bench
    experiment = tmp_path / "runs" / "watch" / "cell" / "20261206-000000-000000"
    (experiment / "run_0").mkdir(parents=True)
    (experiment / "run_1").mkdir()
    (experiment / "config.toml").write_text("seed = 45\n")
    timing = "round,train_seconds,aggregate_seconds,evaluate_seconds\n"
    (experiment / "run_0" / "timing.csv").write_text(timing + "1,2,0.5,\n2,3,0.5,1\n")
    (experiment / "run_1" / "timing.csv").write_text(timing + "1,4.0,0.0,0.0\n")
    (experiment / COMPLETED_MARKER).write_text("")
    bench.keep(tmp_path / "runs", tmp_path / "kept")
    copy = tmp_path / "kept" / experiment.relative_to(tmp_path / "runs")
    assert (copy / "run_1" / "timing.csv").is_file()
    assert bench.seconds_per_round(copy) == pytest.approx((2.5 + 4.5 + 4.0) / 3)


def test_a_stage_restored_from_kept_summaries_runs_nothing(report, tmp_path):
    """A fresh clone resumes from bench/report/: a finished cell restored there
    has no per-run logs, and the stage returns it without starting Flower."""
    bench = report.bench
    grid = bench.SweepGrid(("watch",), ("natural",), ("3-3-4",), ("local",))
    overrides = {**report.REPORT, **bench.RECIPES["default"]}
    (cell,) = grid.cells(report.harness.APP, tmp_path / "runs", overrides)
    experiment = cell.directory(tmp_path / "runs") / "20261207-000000-000000"
    (experiment / "run_0").mkdir(parents=True)
    write_config(experiment / "config.toml", cell.resolved)
    (experiment / COMPLETED_MARKER).write_text("round,weighted_accuracy\n60,0.9\n")
    bench.keep(tmp_path / "runs", tmp_path / "kept")
    bench.keep(tmp_path / "kept", tmp_path / "clone")  # what a fresh clone does

    found = bench.run_cells(
        "default", "3-3-4", "natural", ("local",), report.REPORT, tmp_path / "clone"
    )

    restored = tmp_path / "clone" / experiment.relative_to(tmp_path / "runs")
    assert found == {"local": restored}
    assert not (tmp_path / "clone-flwr").exists()  # no Flower home: nothing ran
