"""A dataset added without editing the package: docs/datasets.md's plug-in example
(``examples/toy_plugin``), registered as an installed package registers it (a
``dist-info`` with its entry point on the path), then run through a real
``flwr run`` with a mix that leaves clients without a modality."""

import shutil
import sys
from pathlib import Path

import pytest

from blossom_app.benchmarks import get_task, registered
from blossom_app.benchmarks.registry import BUILTIN
from blossom_app.common.presets import app_defaults, available_presets, resolve_preset
from blossom_app.errors import ConfigError
from blossom_app.reporting.csv_files import read_rows
from blossom_app.reporting.layout import read_config
from blossom_app.tools.cli import main
from blossom_app.tools.flwr_runner import run_app

APP = Path(__file__).parents[1]
EXAMPLE = APP / "examples" / "toy_plugin"


def install(site: Path) -> Path:
    """What ``pip install examples/toy_plugin`` leaves in site-packages: the
    package and its metadata, with the entry point."""
    shutil.copytree(EXAMPLE / "toy_blossom", site / "toy_blossom")
    info = site / "toy_blossom-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: toy-blossom\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[blossom.benchmarks]\ntoy = toy_blossom:TASK\n"
    )
    return site


@pytest.fixture
def site(tmp_path, monkeypatch):
    path = install(tmp_path / "site")
    monkeypatch.syspath_prepend(str(path))
    registered.cache_clear(), get_task.cache_clear()
    yield path
    registered.cache_clear(), get_task.cache_clear()
    sys.modules.pop("toy_blossom", None)


def test_an_installed_plugin_is_registered_by_name_and_reference(site):
    assert list(registered()) == sorted([*BUILTIN, "toy"])
    task = get_task("toy")
    assert task.name == "toy" and task.modality_names == ("left", "right")
    assert get_task("toy_blossom:TASK") is task
    with pytest.raises(ConfigError) as error:
        get_task("toys")
    assert "toy, ucihar, watch" in str(error.value) and "<module>:<attribute>" in str(
        error.value
    )


def test_a_plugin_ships_its_own_presets(site):
    assert available_presets("toy") == ["quick"]
    resolved = resolve_preset({**app_defaults(), "dataset": "toy", "preset": "quick"})
    assert (resolved["num-server-rounds"], resolved["local-epochs"]) == (3, 2)
    with pytest.raises(ConfigError, match="preset of dataset 'toy': quick"):
        resolve_preset({**app_defaults(), "dataset": "toy", "preset": "paper"})


def test_a_plugins_default_preset_is_its_recipe_unless_a_key_says_otherwise(
    site, tmp_path, capsys
):
    """Explicit keys > the user's preset > the task's default preset > the
    app's defaults (DECISIONS 34), resolved once and recorded."""
    defaults = app_defaults()
    plain = resolve_preset({**defaults, "dataset": "toy"})
    assert plain["preset"] == "quick"  # recorded in config.toml as it ran
    assert (plain["num-server-rounds"], plain["local-epochs"]) == (3, 2)
    assert resolve_preset(plain) == plain  # resolving twice changes nothing
    mine = resolve_preset({**defaults, "dataset": "toy", "num-server-rounds": 9})
    assert (mine["num-server-rounds"], mine["local-epochs"]) == (9, 2)
    watch = resolve_preset({**defaults, "dataset": "watch"})
    assert watch["preset"] == "" and watch == {**defaults, "dataset": "watch"}
    assert main(["info"]) == 0
    assert "default preset: quick (when 'preset' is '')" in capsys.readouterr().out
    # a default naming no file is the plug-in's mistake, said as such
    broken = tmp_path / "broken_toy.py"
    broken.write_text(
        "from dataclasses import replace\nfrom toy_blossom import TASK\n"
        "BROKEN = replace(TASK, name='broken', default_preset='quik')\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ConfigError) as error:
            resolve_preset({**defaults, "dataset": "broken_toy:BROKEN"})
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("broken_toy", None)
    assert "default_preset names 'quik'" in str(error.value)


def test_a_bad_reference_says_what_is_wrong(site):
    with pytest.raises(ConfigError, match="not a Task"):
        get_task("toy_blossom:build")  # a function, but it needs a path
    with pytest.raises(ConfigError, match="No module named"):
        get_task("toy_blosom:TASK")


def test_the_plugin_runs_end_to_end_through_flwr(site, flwr_env, tmp_path):
    from toy_blossom import build

    data = build(tmp_path / "toy.parquet", rows=600)
    outcome = run_app(
        APP,
        {
            "dataset": "toy",
            "data-source": str(data),
            "partitioner": "natural",
            "modality-mix": "left=2,right=2,left+right=2",
            # no preset: the plug-in's default, quick (3 rounds, 2 local epochs)
        },
        num_supernodes=6,
        env={**flwr_env, "PYTHONPATH": str(site)},
        timeout=600,
    )
    assert outcome.ok, outcome.output[-3000:]
    [experiment] = Path(flwr_env["BLOSSOM_RESULTS_DIR"]).glob("toy/natural/*/*/*")
    clients = read_rows(experiment / "run_0" / "client_metrics.csv")
    assert {r["modalities"] for r in clients} == {"left", "right", "left+right"}
    aggregated = read_rows(experiment / "aggregated_metrics.csv")
    assert [int(r["round"]) for r in aggregated][-1] == 3  # the preset's rounds
    assert read_config(experiment)["preset"] == "quick"
    final = aggregated[-1]
    assert float(final["weighted_accuracy_mean"]) > 0.7  # the classes are learnable
    models = read_rows(experiment / "run_0" / "models.csv")
    assert {r["status"] for r in models} == {"written"} and len(models) == 6
