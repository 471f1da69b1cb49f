"""Registry of benchmarks: one folder per dataset, looked up by name."""

from ..errors import ConfigError
from .task import ModalitySpec, Task
from .watch import WATCH

TASKS: dict[str, Task] = {task.name: task for task in (WATCH,)}


def get_task(name: str) -> Task:
    """Return the task called ``name`` or raise a ConfigError listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError("dataset", name, ", ".join(sorted(TASKS))) from None


__all__ = ["ModalitySpec", "TASKS", "Task", "get_task"]
