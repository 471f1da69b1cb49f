"""Which datasets the app knows, and how a user adds one without editing it.

A dataset is a ``Task`` object, found by reference, ``"<module>:<attribute>"``
(the attribute: a ``Task``, or a function of no arguments returning one). The
run config's ``dataset`` is either such a reference or a registered name:
the built-in datasets below, and every entry point of the group
``blossom.benchmarks`` that installed packages declare, e.g. in a plug-in's
``pyproject.toml``::

    [project.entry-points."blossom.benchmarks"]
    toy = "toy_blossom:TASK"

Built-in and plug-in datasets resolve the same way: a name maps to a
reference, and a reference is imported only when the dataset is used.
"""

import importlib
import inspect
from functools import cache
from importlib.metadata import entry_points

from blossom_app.benchmarks.task import Task
from blossom_app.errors import ConfigError

ENTRY_POINT_GROUP = "blossom.benchmarks"
#: The datasets that ship with the app (a name -> its reference).
BUILTIN = {
    "watch": "blossom_app.benchmarks.watch:WATCH",
    "ucihar": "blossom_app.benchmarks.ucihar:UCIHAR",
    "kuhar": "blossom_app.benchmarks.kuhar:KUHAR",
    "ptbxl": "blossom_app.benchmarks.ptbxl:PTBXL",
    "meld": "blossom_app.benchmarks.meld:MELD",
    "meld-mobilebert": "blossom_app.benchmarks.meld:MELD_MOBILEBERT",
    "iemocap": "blossom_app.benchmarks.iemocap:IEMOCAP",
    "iemocap-mobilebert": "blossom_app.benchmarks.iemocap:IEMOCAP_MOBILEBERT",
    "avmnist": "blossom_app.benchmarks.avmnist:AVMNIST",
    "synthetic": "blossom_app.benchmarks.synthetic:SYNTHETIC",
}


@cache
def registered() -> dict[str, str]:
    """Every registered dataset name -> its reference, sorted by name (a
    plug-in may not take a built-in name)."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    taken = sorted(name for name in found if name in BUILTIN)
    if taken:
        raise ConfigError(
            f"entry points {ENTRY_POINT_GROUP}",
            ", ".join(taken),
            "names not taken by a built-in dataset (" + ", ".join(BUILTIN) + ")",
            "Rename the plug-in's entry point.",
        )
    return dict(sorted({**BUILTIN, **found}.items()))


def _resolve(reference: str, named: str) -> Task:
    module_name, _, attribute = reference.partition(":")
    hint = (
        f"'{named}' must be a registered dataset ({', '.join(registered())}) or a "
        "reference '<module>:<attribute>' to a Task (or to a function returning one)"
    )
    if not module_name or not attribute:
        raise ConfigError("dataset", named, hint)
    try:
        target = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise ConfigError(
            "dataset",
            named,
            hint,
            f"Importing {reference} failed ({error}); is its package installed "
            "(or on PYTHONPATH) where the ServerApp and ClientApps run?",
        ) from None
    task = target
    if not isinstance(task, Task) and callable(target) and _no_arguments(target):
        task = target()
    if not isinstance(task, Task):
        raise ConfigError(
            "dataset",
            named,
            hint,
            f"{reference} is a {type(target).__name__}, not a Task.",
        )
    return task


def _no_arguments(function: object) -> bool:
    """Whether ``function`` can be called without arguments (a Task factory)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in parameters
    )


@cache
def get_task(name: str) -> Task:
    """The task of a registered dataset name or of a reference; a ConfigError
    lists every registered name otherwise."""
    if ":" in name:
        return _resolve(name, name)
    references = registered()
    if name not in references:
        raise ConfigError(
            "dataset",
            name,
            ", ".join(references) + ", or '<module>:<attribute>' naming a Task",
            f"Plug-in datasets register under the entry point group "
            f"'{ENTRY_POINT_GROUP}' (see docs/datasets.md, the plug-in API).",
        )
    task = _resolve(references[name], name)
    if task.name != name:
        raise ConfigError(
            "dataset",
            name,
            f"a dataset whose Task is named as registered; {references[name]} "
            f"is named '{task.name}'",
        )
    return task


def all_tasks() -> list[Task]:
    """Every registered dataset's task, by name (each imported)."""
    return [get_task(name) for name in registered()]
