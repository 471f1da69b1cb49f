"""Data layer: load a task's dataset, split it train/test, partition it."""

from .client_data import ClientData, Split, load_client_data
from .loading import cache_dir, load_task_dataset
from .partitioning import PARTITIONERS, assign_dataset, make_partitioner
from .splits import split_dataset

__all__ = [
    "PARTITIONERS",
    "ClientData",
    "Split",
    "assign_dataset",
    "cache_dir",
    "load_client_data",
    "load_task_dataset",
    "make_partitioner",
    "split_dataset",
]
