"""Bench results carry the code they ran; the report marks the stale ones."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(APP / "bench"))
    yield importlib.import_module("harness"), importlib.import_module("personalization")
    sys.modules.pop("personalization", None)
    sys.modules.pop("harness", None)


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_the_code_version_follows_the_apps_files_not_the_docs(bench, tmp_path):
    harness, _ = bench
    (tmp_path / "blossom_app").mkdir()
    (tmp_path / "docs").mkdir()
    for name in ("blossom_app/model.py", "pyproject.toml", "docs/notes.md"):
        (tmp_path / name).write_text("one\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    first = harness.code_version(tmp_path)
    assert len(str(first["commit"])) == 40 and first["dirty"] is False

    (tmp_path / "docs/notes.md").write_text("two\n")  # not code
    assert harness.code_version(tmp_path) == first
    (tmp_path / "blossom_app/model.py").write_text("two\n")
    changed = harness.code_version(tmp_path)
    assert changed["dirty"] is True and changed["code"] != first["code"]
    (tmp_path / "blossom_app/new.py").write_text("")  # untracked code counts too
    assert harness.code_version(tmp_path)["code"] != changed["code"]

    harness.stamp(tmp_path, first)
    assert harness.read_stamp(tmp_path) == first
    assert harness.read_stamp(tmp_path / "docs") is None


def test_the_table_marks_stale_rows_and_the_gap_to_the_best_fixed_policy(bench):
    harness, personalization = bench
    now = {"commit": "a" * 40, "dirty": False, "code": "1234"}
    old = {"commit": "b" * 40, "dirty": True, "code": "5678"}

    def cell(accuracy: float, version) -> dict:
        return {
            "runs": 3,
            "rounds": 60,
            "version": version,
            "weighted_accuracy_mean": accuracy,
            "weighted_accuracy_std": 0.01,
            "weighted_macro_f1_mean": accuracy - 0.05,
            "weighted_macro_f1_std": 0.01,
        }

    measured = {
        ("default", "3-3-4", "iid"): {
            personalization.DEFAULT_POLICY: cell(0.90, now),
            "full-model": cell(0.93, old),
            "local": cell(0.85, None),
            "centralized": cell(0.95, now),
        },
        ("default-clipped", "3-3-4", "iid"): {"centralized": cell(0.97, now)},
    }
    table, [verdict] = personalization.summarize(measured, now)
    rows = {line.split(" | ")[3]: line for line in table.splitlines()[2:]}
    default = rows[personalization.DEFAULT_POLICY]
    assert default.endswith("| -7.0 | -3.0 | current |")  # the better centralized
    assert rows["full-model"].endswith("| (best) | stale (bbbbbbb+dirty) |")
    assert rows["local"].endswith("| -8.0 | unstamped |")
    assert verdict["gap_to_centralized"] == pytest.approx(-0.07)
