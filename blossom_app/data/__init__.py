"""Data layer: load a task's dataset, split it train/test, partition it.

The names a client needs (``load_client_data``, ``Split``...) import numpy
only; the ones that need HF ``datasets`` or ``flwr-datasets`` are imported on
first use, so a client reading its cached arrays never loads those packages.
"""

import importlib

from blossom_app.data.cache import cache_dir, feature_identities
from blossom_app.data.client_data import (
    load_client_data,
    warn_if_no_validation,
    warn_if_one_class,
)
from blossom_app.data.examples import ClientData, Split
from blossom_app.data.settings import DataSettings

PARTITIONERS = ("iid", "dirichlet", "natural")

_HEAVY = {
    "load_task_dataset": "loading",
    "count_groups": "loading",
    "assign_dataset": "partitioning",
    "make_partitioner": "partitioning",
    "split_dataset": "splits",
}


def __getattr__(name: str) -> object:
    if name in _HEAVY:
        return getattr(importlib.import_module(f".{_HEAVY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PARTITIONERS",
    "ClientData",
    "DataSettings",
    "Split",
    "assign_dataset",
    "cache_dir",
    "count_groups",
    "feature_identities",
    "load_client_data",
    "load_task_dataset",
    "make_partitioner",
    "split_dataset",
    "warn_if_no_validation",
    "warn_if_one_class",
]
