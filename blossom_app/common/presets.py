"""Presets: named sets of run-config values, such as the paper's recipe.

``preset = "paper"`` in the run config names ``conf/<dataset>/paper.toml`` in
the app directory, or for a plug-in dataset ``paper.toml`` in the directory
its ``Task.presets`` names (shipped with the plug-in). Its values replace the
app's defaults, and a key the user set to anything but its default wins over
the preset, so one command combines both:
``flwr run . --run-config "preset='paper' seed=7"``. A dataset's task may
name the preset it runs with when the run config names none
(``Task.default_preset``): explicit keys > the user's preset > the task's
default preset > the app's defaults (DECISIONS 34). The app resolves the
preset itself (the ServerApp, every ClientApp, ``blossom`` commands), and the
results record the resolved values, so ``blossom compare`` and sweeps see
what actually ran.

Every cell of the paper's grid is a preset too, of every dataset with a
``paper`` preset, generated rather than written: ``<partitioner>-<mix>-<policy>``
(``iid-3-3-4-private-head-fusion``, ``grid_cells``) is the ``paper`` preset
with that ``partitioner``, ``modality-mix`` and policy (``aggregation``). It
resolves to ``preset = "paper"`` and those keys, exactly what a sweep of the
paper preset runs for that cell, so both are the same experiment.
"""

import tomllib
from collections.abc import Mapping
from itertools import product
from pathlib import Path

from blossom_app import APP_DIR
from blossom_app.common.policies import paper_policies, policy_keys
from blossom_app.errors import ConfigError

#: A run-config value.
Scalar = int | float | str | bool

PRESET = "preset"
#: Keys a preset may not set: they choose the preset.
_FIXED = frozenset({PRESET, "dataset"})

#: The preset the paper's grid cells build on: the paper's recipe.
PAPER = "paper"
#: The paper's grid: these partitioners x modality mixes x the registry's
#: ``paper`` policies (``policies.py``); the default grid of ``blossom sweep``.
GRID_PARTITIONERS = ("iid", "dirichlet")
GRID_MIXES = ("0-0-10", "3-3-4", "5-5-0")


def grid_cells() -> dict[str, dict[str, Scalar]]:
    """Each cell of the paper's grid: its preset name,
    ``<partitioner>-<mix>-<policy>``, and the run-config keys it sets over the
    ``paper`` preset."""
    return {
        f"{partitioner}-{mix}-{policy}": {
            "partitioner": partitioner,
            "modality-mix": mix,
            **policy_keys(policy),
        }
        for partitioner, mix, policy in product(
            GRID_PARTITIONERS, GRID_MIXES, paper_policies()
        )
    }


def _grid_allowed() -> str:
    """The grid cells' names, as an error message lists them."""
    return (
        "a cell of the paper's grid, '<partitioner>-<mix>-<policy>' with "
        f"partitioner {' | '.join(GRID_PARTITIONERS)}, "
        f"mix {' | '.join(GRID_MIXES)}, "
        f"policy {' | '.join(paper_policies())}"
    )


def app_defaults(app_dir: Path = APP_DIR) -> dict[str, Scalar]:
    """The app's ``[tool.flwr.app.config]`` (what ``flwr run`` starts from)."""
    with (app_dir / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["tool"]["flwr"]["app"]["config"]


def preset_dir(dataset: str, app_dir: Path = APP_DIR) -> Path:
    """Where ``dataset``'s presets are: ``conf/<dataset>/`` in the app
    directory, else the plug-in task's ``presets`` directory."""
    built_in = app_dir / "conf" / dataset
    if built_in.is_dir():
        return built_in
    # the registry imports plug-ins: only here
    from blossom_app.benchmarks import get_task

    return get_task(dataset).presets or built_in


def available_presets(dataset: str, app_dir: Path = APP_DIR) -> list[str]:
    """The preset files of ``dataset``: those of its preset directory that do
    not choose a preset themselves (a plug-in may ship such run-config files
    for ``flwr run . --run-config <file>``). The paper's grid cells are
    generated, not files: ``grid_presets``."""
    found = []
    for path in sorted(preset_dir(dataset, app_dir).glob("*.toml")):
        with path.open("rb") as handle:
            if not _FIXED & set(tomllib.load(handle)):
                found.append(path.stem)
    return found


def grid_presets(dataset: str, app_dir: Path = APP_DIR) -> list[str]:
    """The paper's grid cells as presets of ``dataset``: every cell where it
    has a ``paper`` preset, else none."""
    if not (preset_dir(dataset, app_dir) / f"{PAPER}.toml").is_file():
        return []
    return list(grid_cells())


def resolve_preset(
    run_config: Mapping[str, Scalar],
    defaults: Mapping[str, Scalar] | None = None,
    app_dir: Path = APP_DIR,
) -> dict[str, Scalar]:
    """``run_config`` with its preset applied (unchanged without one).

    A preset value is taken for every key whose value in ``run_config`` is the
    app's default (``defaults``, else read from the app's ``pyproject.toml``);
    any other value was chosen by the user and stays. A grid cell's name
    becomes ``preset = "paper"`` and the cell's keys (``grid_cells``).
    Resolving twice gives the same result.
    """
    resolved = dict(run_config)
    dataset = str(resolved.get("dataset", ""))
    name = str(resolved.get(PRESET, ""))
    if not name and dataset and (name := _task_default(dataset, app_dir)):
        resolved[PRESET] = name
    if not name:
        return resolved
    directory = preset_dir(dataset, app_dir)
    path = directory / f"{name}.toml"
    cell: dict[str, Scalar] = {}
    if not path.is_file():
        cell = _grid_cell(name, dataset, app_dir)
        resolved[PRESET] = PAPER
        path = directory / f"{PAPER}.toml"
    with path.open("rb") as handle:
        values = tomllib.load(handle)
    if defaults is None:
        defaults = app_defaults(app_dir)
    unknown = sorted((set(values) - set(defaults)) | (set(values) & _FIXED))
    if unknown:
        raise ConfigError(
            f"{path.name} keys",
            ", ".join(unknown),
            "run-config keys of the app's pyproject.toml, except preset and dataset",
            f"Fix {path}.",
        )
    for key, value in values.items():
        if resolved.get(key, defaults[key]) == defaults[key]:
            resolved[key] = value
    for key, value in cell.items():  # as the user's own keys: over the preset's
        if run_config.get(key, defaults[key]) == defaults[key]:
            resolved[key] = value
    return resolved


def _task_default(dataset: str, app_dir: Path) -> str:
    """The preset ``dataset``'s task runs with when the run config names none
    (``Task.default_preset``); a ConfigError if it names no preset file."""
    # the registry imports plug-ins: only here
    from blossom_app.benchmarks import get_task

    name = get_task(dataset).default_preset
    directory = preset_dir(dataset, app_dir)
    if name and not (directory / f"{name}.toml").is_file():
        raise ConfigError(
            "dataset",
            dataset,
            "a dataset whose default preset exists",
            f"Its Task's default_preset names '{name}', which is not a file "
            f"{name}.toml in {directory}: fix the plug-in, or name a preset "
            "yourself (preset = '<name>').",
        )
    return name


def _grid_cell(name: str, dataset: str, app_dir: Path) -> dict[str, Scalar]:
    """The keys of grid cell ``name`` of ``dataset``; a ConfigError naming
    the dataset's presets and the grid's parts where it is none."""
    cells = grid_cells() if grid_presets(dataset, app_dir) else {}
    if name in cells:
        return cells[name]
    found = ", ".join(available_presets(dataset, app_dir)) or "none"
    allowed = f"'' or a preset of dataset '{dataset}': {found}"
    if cells:
        allowed += f"; or {_grid_allowed()}"
    raise ConfigError(
        PRESET,
        name,
        allowed,
        f"A preset is a file conf/{dataset}/<name>.toml in the app directory "
        "(a plug-in's: <name>.toml in its Task's presets directory)"
        + (", or a cell of the paper's grid over its paper.toml." if cells else "."),
    )
