"""Presets: named sets of run-config values, such as the paper's recipe.

``preset = "paper"`` in the run config names ``conf/<dataset>/paper.toml`` in
the app directory, or for a plug-in dataset ``paper.toml`` in the directory
its ``Task.presets`` names (shipped with the plug-in). Its values replace the
app's defaults, and a key the user set to anything but its default wins over
the preset, so one command combines both:
``flwr run . --run-config "preset='paper' seed=7"``. The app resolves the
preset itself (the ServerApp, every ClientApp, ``blossom`` commands), and the
results record the resolved values, so ``blossom compare`` and sweeps see
what actually ran.
"""

import tomllib
from collections.abc import Mapping
from pathlib import Path

from blossom_app import APP_DIR
from blossom_app.errors import ConfigError

#: A run-config value.
Scalar = int | float | str | bool

PRESET = "preset"
#: Keys a preset may not set: they choose the preset.
_FIXED = frozenset({PRESET, "dataset"})


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
    from blossom_app.benchmarks import (
        get_task,  # the registry imports plug-ins: only here
    )

    return get_task(dataset).presets or built_in


def available_presets(dataset: str, app_dir: Path = APP_DIR) -> list[str]:
    """The presets of ``dataset``: the files of its preset directory that do
    not choose a preset themselves (those are grid cells, run with ``flwr run
    . --run-config conf/<dataset>/<cell>.toml``)."""
    found = []
    for path in sorted(preset_dir(dataset, app_dir).glob("*.toml")):
        with path.open("rb") as handle:
            if not _FIXED & set(tomllib.load(handle)):
                found.append(path.stem)
    return found


def resolve_preset(
    run_config: Mapping[str, Scalar],
    defaults: Mapping[str, Scalar] | None = None,
    app_dir: Path = APP_DIR,
) -> dict[str, Scalar]:
    """``run_config`` with its preset applied (unchanged without one).

    A preset value is taken for every key whose value in ``run_config`` is the
    app's default (``defaults``, else read from the app's ``pyproject.toml``);
    any other value was chosen by the user and stays. Resolving twice gives
    the same result.
    """
    resolved = dict(run_config)
    name = str(resolved.get(PRESET, ""))
    if not name:
        return resolved
    dataset = str(resolved.get("dataset", ""))
    path = preset_dir(dataset, app_dir) / f"{name}.toml"
    if not path.is_file():
        found = ", ".join(available_presets(dataset, app_dir)) or "none"
        raise ConfigError(
            PRESET,
            name,
            f"'' or a preset of dataset '{dataset}': {found}",
            f"A preset is a file conf/{dataset}/<name>.toml in the app directory "
            "(a plug-in's: <name>.toml in its Task's presets directory).",
        )
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
    return resolved
