"""One client's train and test arrays computed from its task's dataset: load,
split, partition, convert (HF ``datasets`` and ``flwr-datasets``; see
``client_data.py`` for the cache in front of it)."""

import datasets
import numpy as np
from flwr_datasets.partitioner import Partitioner

from blossom_app.benchmarks.task import Task
from blossom_app.data.cache import source_identity
from blossom_app.data.columns import modality_array, numpy_columns
from blossom_app.data.examples import ClientData, Split
from blossom_app.data.loading import load_task_dataset, require_columns
from blossom_app.data.partitioning import assign_dataset, make_partitioner
from blossom_app.data.settings import DataSettings
from blossom_app.data.splits import (
    HOLDOUT_COLUMN,
    SPLIT_COLUMN,
    TRAIN,
    VALIDATION,
    hold_out_validation,
    split_dataset,
)
from blossom_app.errors import DataError

# Per-process cache of split, shuffled, partitioned datasets, keyed by the
# settings that shape them (the task with its column names) and the source's
# identity.
_partitioned: dict[tuple[object, ...], Partitioner] = {}


def partition_client_data(
    settings: DataSettings, partition_id: int, modalities: tuple[str, ...]
) -> ClientData:
    """Return partition ``partition_id`` of the data ``settings`` describe,
    split train/test (and validation, with a ``validation_fraction`` > 0).

    The dataset is split train/test as a whole (split_dataset; then
    hold_out_validation), then partitioned among ``num_partitions`` clients;
    only the columns of ``modalities`` are read. The settings come validated
    from ``ExperimentConfig`` and ``NodeConfig``. The partitioned dataset is
    cached per process.
    """
    task, source = settings.task, settings.resolved_source
    partitioner, num_partitions = settings.partitioner, settings.num_partitions
    seed, validation_fraction = settings.seed, settings.validation_fraction
    key = (settings, source, repr(source_identity(task, source)))
    loaded = load_task_dataset(task, source)
    # columns and labels were validated at load time; here only presence
    require_columns(loaded, task, modalities, group=partitioner == "natural")
    if key not in _partitioned:
        cut = {
            "seed": seed,
            "window": task.modalities[0].shape[0],
            "in_order_by": (task.group_column or "")
            if task.overlapping_windows
            else None,
        }
        dataset = split_dataset(loaded, settings.test_fraction, **cut)
        if validation_fraction > 0:
            dataset = hold_out_validation(dataset, validation_fraction, **cut)
        parts = make_partitioner(
            partitioner,
            num_partitions,
            alpha=settings.alpha,
            seed=seed,
            label_column=task.label_column,
            group_column=task.group_column,
        )
        assign_dataset(parts, dataset, num_partitions=num_partitions, seed=seed)
        _partitioned[key] = parts
    parts = _partitioned[key]
    try:
        rows = parts.load_partition(partition_id)
    except IndexError:  # datasets' shard fails on an empty one (iid, few rows)
        rows = parts.dataset.select([])
    validating = validation_fraction > 0
    flags = numpy_columns(rows, [SPLIT_COLUMN, *[HOLDOUT_COLUMN] * validating])
    is_test = flags[SPLIT_COLUMN].astype(bool, copy=False)
    masks = {"train": ~is_test, "test": is_test}
    if validating:
        masks["validation"] = flags[HOLDOUT_COLUMN] == VALIDATION
        masks["train"] &= flags[HOLDOUT_COLUMN] == TRAIN
    counts = {name: int(mask.sum()) for name, mask in masks.items()}
    # no validation examples: the client keeps the federation's blocks (a
    # warning says so, ``warn_if_no_validation``); train and test it needs
    if not (counts["train"] and counts["test"]):
        raise DataError(
            empty_partition(settings, partition_id, counts, len(parts.dataset))
        )
    return ClientData(
        **{
            name: _to_split(rows.select(np.flatnonzero(mask)), task, modalities)
            for name, mask in masks.items()
        }
    )


def empty_partition(
    settings: DataSettings, partition_id: int, counts: dict[str, int], rows: int
) -> str:
    """Why partition ``partition_id`` cannot be a client (one of ``counts``,
    its examples per split, is 0) and what to change; ``rows``: the dataset's."""
    have = " and ".join(f"{n} {name}" for name, n in counts.items())
    fixes = []
    if settings.num_partitions > 1 and settings.partitioner != "natural":
        fixes.append("fewer clients (modality-mix)")
    if settings.partitioner == "dirichlet":
        fixes.append(f"a larger dirichlet-alpha (now {settings.alpha})")
    test, validation = settings.test_fraction, settings.validation_fraction
    split = any(counts.values())  # it has examples, split the wrong way
    if split and counts["train"] == 0:
        fixes.append(f"a smaller test-fraction (now {test})")
        if validation:
            fixes.append(f"a smaller validation-fraction (now {validation})")
    if split and counts["test"] == 0:
        fixes.append(f"a larger test-fraction (now {test})")
    if split and counts.get("validation") == 0:
        fixes.append(f"a larger validation-fraction (now {validation})")
    if settings.partitioner != "iid":
        fixes.append("the iid partitioner")
    return (
        f"Partition {partition_id} of {settings.num_partitions} "
        f"('{settings.partitioner}' partitioner, {rows} rows in the dataset) has "
        f"{have} examples; a client needs at least one of each. Use "
        + ", or ".join(fixes)
        + "."
    )


def _to_split(rows: datasets.Dataset, task: Task, modalities: tuple[str, ...]) -> Split:
    """Read only the columns of ``modalities`` and the labels of ``rows``."""
    labels = numpy_columns(rows, [task.label_column])[task.label_column]
    return Split(
        inputs={name: modality_array(rows, task.modality(name)) for name in modalities},
        labels=labels.astype(np.int64, copy=False),
    )
