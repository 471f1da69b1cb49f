"""`blossom compare` on hand-made results trees (see results_helpers.py)."""

import math

import pytest
from results_helpers import assert_readable_png, make_experiment

from blossom_app.reporting.compare import compare, relative_gain
from blossom_app.reporting.csv_files import number, read_rows
from blossom_app.reporting.output import complete_experiment
from blossom_app.tools.cli import main

# final weighted accuracy of each run, per (mix, policy)
FINALS = {
    ("3-3-4", "full-model"): [0.5, 0.6],
    ("3-3-4", "private-head"): [0.66, 0.66],
    ("3-3-4", "private-head-fusion"): [0.44, 0.44],
    ("5-5-0", "full-model"): [0.4, 0.4],
    ("5-5-0", "private-head-fusion"): [0.5, 0.6],
}


@pytest.fixture
def results(tmp_path):
    for (mix, policy), finals in FINALS.items():
        complete_experiment(
            make_experiment(tmp_path, mix, policy, finals, bytes_per_round=3_000_000)
        )
    return tmp_path


def test_relative_gain():
    assert relative_gain(0.66, 0.55) == pytest.approx(20.0)
    assert relative_gain(0.44, 0.55) == pytest.approx(-20.0)
    assert math.isnan(relative_gain(0.5, 0.0))
    assert math.isnan(relative_gain(0.5, math.nan))


def test_gains_over_full_model_per_mix(results):
    [comparison] = compare([results])

    assert comparison.out == results / "watch" / "iid" / "comparison"
    table = read_rows(comparison.out / "comparison.csv")
    rows = {(r["mix"], r["policy"]): r for r in table}
    assert list(rows) == list(FINALS)  # mixes sorted, full-model first
    expected = {
        ("3-3-4", "full-model"): (0.55, 0.0),
        ("3-3-4", "private-head"): (0.66, 20.0),
        ("3-3-4", "private-head-fusion"): (0.44, -20.0),
        ("5-5-0", "full-model"): (0.4, 0.0),
        ("5-5-0", "private-head-fusion"): (0.55, 37.5),
    }
    for cell, (accuracy, gain) in expected.items():
        row = rows[cell]
        assert number(row["weighted_accuracy_mean"]) == pytest.approx(accuracy)
        assert number(row["weighted_accuracy_gain_pct"]) == pytest.approx(gain)
        # macro-F1 is accuracy - 0.05 (weighted) and - 0.02 (pooled) by design
        base = number(rows[cell[0], "full-model"]["weighted_accuracy_mean"])
        assert number(row["weighted_macro_f1_gain_pct"]) == pytest.approx(
            relative_gain(accuracy - 0.05, base - 0.05)
        )
        assert number(row["pooled_macro_f1_mean"]) == pytest.approx(accuracy - 0.02)
        assert row["runs"] == "2" and row["rounds"] == "3"
        assert number(row["mb_per_round"]) == pytest.approx(3.0)
    assert number(rows["3-3-4", "full-model"]["weighted_accuracy_std"]) == (
        pytest.approx(math.sqrt(0.005))
    )

    assert "3-3-4  private-head " in comparison.text
    assert "+20.0 %" in comparison.text and "-20.0 %" in comparison.text
    markdown = (comparison.out / "comparison.md").read_text()
    assert "| 5-5-0 | private-head-fusion | 2 | 3 | 0.550 ± 0.071 | +37.5 % |" in (
        markdown
    )
    pngs = [p for p in comparison.files if p.suffix == ".png"]
    assert len(pngs) == 3 * 2 + 2
    for path in pngs:
        assert_readable_png(path)


def test_latest_complete_experiment_of_a_cell_counts(tmp_path):
    complete_experiment(make_experiment(tmp_path, "1-1-1", "full-model", [0.5]))
    complete_experiment(
        make_experiment(tmp_path, "1-1-1", "full-model", [0.8], stamp="20270101")
    )
    make_experiment(tmp_path, "1-1-1", "full-model", [0.1], stamp="20280101")
    complete_experiment(make_experiment(tmp_path, "1-1-1", "private-head", [0.9]))

    [comparison] = compare([tmp_path], out=tmp_path / "elsewhere")

    assert comparison.out == tmp_path / "elsewhere" / "watch" / "iid" / "comparison"
    rows = read_rows(comparison.out / "comparison.csv")
    assert [number(r["weighted_accuracy_mean"]) for r in rows] == pytest.approx(
        [0.8, 0.9]
    )
    assert rows[1]["weighted_accuracy_std"] == ""  # one run


def test_no_baseline_no_gain_and_cli_prints_the_table(tmp_path, capsys):
    complete_experiment(make_experiment(tmp_path, "1-1-1", "private-head", [0.9]))

    assert main(["compare", str(tmp_path)]) == 0

    printed = capsys.readouterr().out
    assert "1-1-1  private-head  1     3       0.900" in printed
    assert "n/a" in printed
    [row] = read_rows(tmp_path / "watch" / "iid" / "comparison" / "comparison.csv")
    assert row["weighted_accuracy_gain_pct"] == ""
    assert main(["compare", str(tmp_path / "nothing-here")]) == 1


def test_every_policy_is_also_compared_with_training_alone(tmp_path):
    for policy, finals in (
        ("private-head-fusion", [0.6]),
        ("full-model", [0.5]),
        ("local", [0.48]),
    ):
        complete_experiment(make_experiment(tmp_path, "3-3-4", policy, finals))

    [comparison] = compare([tmp_path])

    rows = read_rows(comparison.out / "comparison.csv")
    assert [row["policy"] for row in rows] == [
        "full-model",
        "local",
        "private-head-fusion",
    ]
    federated = rows[2]
    assert number(federated["weighted_accuracy_gain_local_pct"]) == pytest.approx(
        relative_gain(0.6, 0.48)
    )
    assert number(rows[0]["weighted_accuracy_gain_local_pct"]) == pytest.approx(
        relative_gain(0.5, 0.48)
    )
    assert "vs local" in comparison.text and "+25.0 %" in comparison.text


def test_runs_that_ran_differently_get_rows_of_their_own(tmp_path):
    """A recipe (a preset, a key) makes its own rows, labelled by what differs,
    and gains are taken within it; the seed and the number of runs do not."""
    for index, (policy, finals, config) in enumerate(
        (
            ("full-model", [0.5], {}),
            ("private-head-fusion", [0.6], {"seed": 7, "num-runs": 1}),
            ("full-model", [0.4], {"preset": "paper", "local-epochs": 1}),
            ("private-head-fusion", [0.8, 0.8], {"preset": "paper", "local-epochs": 1}),
            ("private-head-fusion", [0.7], {"preset": "paper", "local-epochs": 3}),
        )
    ):
        complete_experiment(
            make_experiment(
                tmp_path,
                "3-3-4",
                policy,
                finals,
                config=config,
                stamp=f"2026010{index}",
            )
        )

    [comparison] = compare([tmp_path])

    rows = {
        (r["variant"], r["policy"]): r
        for r in read_rows(comparison.out / "comparison.csv")
    }
    assert sorted(rows) == [
        ("", "full-model"),
        ("", "private-head-fusion"),
        ("preset=paper", "full-model"),
        ("preset=paper", "private-head-fusion"),
        ("preset=paper local-epochs=3", "private-head-fusion"),
    ]
    gain = "weighted_accuracy_gain_pct"
    assert number(rows["", "private-head-fusion"][gain]) == pytest.approx(20.0)
    assert number(rows["preset=paper", "private-head-fusion"][gain]) == (
        pytest.approx(100.0)
    )
    assert rows["preset=paper local-epochs=3", "private-head-fusion"][gain] == ""
    assert "| 3-3-4 | preset=paper | private-head-fusion | 2 |" in (
        (comparison.out / "comparison.md").read_text()
    )


def test_each_row_shows_its_gap_to_centralized_and_to_the_best_fixed_policy(
    tmp_path,
):
    for policy, finals in (
        ("full-model", [0.5]),
        ("private-head-fusion", [0.6]),
        ("full-model+adaptive", [0.62]),
        ("local", [0.48]),
        ("centralized", [0.7]),
    ):
        complete_experiment(make_experiment(tmp_path, "3-3-4", policy, finals))

    [comparison] = compare([tmp_path])

    rows = {r["policy"]: r for r in read_rows(comparison.out / "comparison.csv")}
    expected = {  # points from centralized, from the best fixed (private-head-fusion)
        "full-model": (-20.0, -10.0),
        "private-head-fusion": (-10.0, 0.0),
        "full-model+adaptive": (-8.0, 2.0),
        "local": (-22.0, -12.0),
        "centralized": (0.0, 10.0),
    }
    for policy, (central, fixed) in expected.items():
        row = rows[policy]
        assert number(row["weighted_accuracy_vs_centralized_pts"]) == pytest.approx(
            central
        )
        assert number(row["weighted_accuracy_vs_best_fixed_pts"]) == pytest.approx(
            fixed
        )
        assert row["weighted_accuracy_best_fixed"] == "private-head-fusion"
    assert "vs centralized (pts)" in comparison.text
    assert "vs best fixed (pts)" in comparison.text
    assert "+2.0 (private-head-fusion)" in comparison.text
    markdown = (comparison.out / "comparison.md").read_text()
    assert "| 3-3-4 | local | 1 | 3 | 0.480 | -4.0 % | (base) | -22.0 | -12.0" in (
        markdown.replace(" (private-head-fusion)", "")
    )
