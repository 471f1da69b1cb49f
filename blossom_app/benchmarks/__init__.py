"""Benchmarks: one folder per dataset; ``registry.py`` finds them (and plug-ins)."""

from blossom_app.benchmarks.registry import (
    ENTRY_POINT_GROUP,
    all_tasks,
    get_task,
    registered,
)
from blossom_app.benchmarks.task import ModalitySpec, Task

__all__ = [
    "ENTRY_POINT_GROUP",
    "ModalitySpec",
    "Task",
    "all_tasks",
    "get_task",
    "registered",
]
