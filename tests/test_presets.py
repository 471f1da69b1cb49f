"""Presets: the hand-written ones are files, the paper's grid is generated.

``conf/<dataset>/`` holds only what is written by hand (``paper.toml``); a
cell of the paper's grid, ``<partitioner>-<mix>-<policy>``, is the paper
preset with those three keys, and resolves exactly as its file did (the grid
files, ``preset = "paper"`` plus ``dataset``, partitioner, mix and policy,
were removed once every one of them was checked to resolve alike).
"""

import shutil
import tomllib
from pathlib import Path

import pytest

from blossom_app.common.config import ExperimentConfig
from blossom_app.common.policies import paper_policies
from blossom_app.common.presets import (
    GRID_MIXES,
    GRID_PARTITIONERS,
    app_defaults,
    available_presets,
    grid_presets,
    preset_dir,
    resolve_preset,
)
from blossom_app.errors import ConfigError

APP = Path(__file__).parents[1]
DEFAULTS = app_defaults()
#: Datasets with the paper's recipe (and so its grid), built-in.
PAPER_DATASETS = sorted(p.parent.name for p in APP.glob("conf/*/paper.toml"))

#: Three of the grid files that were removed, verbatim but for their comment.
REMOVED_FILES = {
    "conf/avmnist/iid-3-3-4-full-model.toml": """
        preset = "paper"
        dataset = "avmnist"
        partitioner = "iid"
        modality-mix = "3-3-4"
        aggregation = "full-model"
    """,
    "conf/meld/dirichlet-0-0-10-private-head-fusion.toml": """
        preset = "paper"
        dataset = "meld"
        partitioner = "dirichlet"
        modality-mix = "0-0-10"
        aggregation = "private-head-fusion"
    """,
    "conf/ptbxl/dirichlet-5-5-0-private-head.toml": """
        preset = "paper"
        dataset = "ptbxl"
        partitioner = "dirichlet"
        modality-mix = "5-5-0"
        aggregation = "private-head"
    """,
}


def resolve(dataset: str, preset: str, **chosen: object) -> dict:
    return resolve_preset({**DEFAULTS, "dataset": dataset, "preset": preset, **chosen})


@pytest.mark.parametrize(("file", "text"), REMOVED_FILES.items())
def test_a_grid_cell_resolves_as_its_removed_file_did(file, text):
    path = Path(file)
    cell = tomllib.loads("\n".join(line.strip() for line in text.splitlines()))
    for chosen in ({}, {"seed": 7, "local-epochs": 2}):
        by_file = resolve_preset({**DEFAULTS, **cell, **chosen}, DEFAULTS)
        assert resolve(path.parent.name, path.stem, **chosen) == by_file


@pytest.mark.parametrize("dataset", PAPER_DATASETS)
def test_every_grid_cell_is_the_paper_preset_with_the_three_keys_its_name_says(
    dataset,
):
    cells = grid_presets(dataset)
    assert len(cells) == len(GRID_PARTITIONERS) * len(GRID_MIXES) * 3
    for name in cells:
        partitioner, a, b, c, policy = name.split("-", 4)
        mix = f"{a}-{b}-{c}"
        assert partitioner in GRID_PARTITIONERS and mix in GRID_MIXES
        assert policy in paper_policies()
        paper = resolve(
            dataset,
            "paper",
            **{"partitioner": partitioner, "modality-mix": mix, "aggregation": policy},
        )
        resolved = resolve(dataset, name)
        assert resolved == paper and resolved["preset"] == "paper"
        assert resolve_preset(resolved, DEFAULTS) == resolved  # stable


def test_conf_holds_only_hand_written_presets():
    """Every file of ``conf/`` is a preset, none a generated grid cell."""
    for directory in (APP / "conf").iterdir():
        files = sorted(path.stem for path in directory.glob("*.toml"))
        assert available_presets(directory.name) == files
        assert not set(files) & set(grid_presets(directory.name))


def test_keys_the_user_sets_win_over_a_grid_cell():
    resolved = resolve("ucihar", "iid-3-3-4-full-model", aggregation="local", seed=7)
    assert (resolved["aggregation"], resolved["seed"]) == ("local", 7)
    assert resolved["modality-mix"] == "3-3-4" and resolved["local-epochs"] == 1


def test_a_mobilebert_task_has_its_base_tasks_grid():
    resolved = resolve("meld-mobilebert", "dirichlet-5-5-0-private-head")
    config = ExperimentConfig.from_run_config(resolved, DEFAULTS)
    assert config.task.name == "meld-mobilebert"
    assert (config.data.partitioner, config.mix.label) == ("dirichlet", "5-5-0")
    assert config.policy.name == "private-head" and config.training.epochs == 1


@pytest.mark.parametrize(
    "name", ["iid-3-3-4-private-heads", "natural-3-3-4-full-model", "iid-1-1-1-local"]
)
def test_an_unknown_cell_names_the_grids_parts(name):
    with pytest.raises(ConfigError) as error:
        resolve("kuhar", name)
    message = str(error.value)
    assert f"'preset': {name!r}" in message and "preset of dataset 'kuhar': paper" in (
        message
    )
    assert "'<partitioner>-<mix>-<policy>' with partitioner iid | dirichlet" in message
    assert "mix 0-0-10 | 3-3-4 | 5-5-0" in message
    assert "policy full-model | private-head | private-head-fusion" in message


@pytest.fixture
def app(tmp_path):
    """A copy of the app's pyproject.toml and presets, to add files to."""
    shutil.copy(APP / "pyproject.toml", tmp_path)
    shutil.copytree(APP / "conf", tmp_path / "conf")
    return tmp_path


def test_a_preset_file_wins_over_a_grid_cell_of_its_name(app):
    (app / "conf" / "watch" / "iid-3-3-4-full-model.toml").write_text(
        "num-server-rounds = 2\n"
    )
    resolved = resolve_preset(
        {**DEFAULTS, "preset": "iid-3-3-4-full-model"}, DEFAULTS, app
    )
    assert resolved["num-server-rounds"] == 2 and resolved["local-epochs"] == 3


def test_a_dataset_without_the_papers_recipe_has_no_grid(app):
    (app / "conf" / "watch" / "paper.toml").rename(app / "conf" / "watch" / "mine.toml")
    assert grid_presets("watch", app) == [] and available_presets("watch", app) == [
        "mine"
    ]
    with pytest.raises(ConfigError) as error:
        resolve_preset({**DEFAULTS, "preset": "iid-3-3-4-full-model"}, DEFAULTS, app)
    assert "preset of dataset 'watch': mine." in str(error.value)
    assert "<partitioner>" not in str(error.value)
    assert preset_dir("watch", app) == app / "conf" / "watch"
