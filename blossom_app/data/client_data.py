"""One client's train and test arrays, from the cache when they are there."""

from logging import WARNING

import numpy as np
from flwr.supercore import log

from blossom_app.data.cache import (
    client_data_path,
    read_client_data,
    source_identity,
    write_client_data,
)
from blossom_app.data.examples import ClientData
from blossom_app.data.settings import DataSettings


def load_client_data(
    settings: DataSettings, partition_id: int, modalities: tuple[str, ...]
) -> ClientData:
    """Partition ``partition_id`` of the data ``settings`` describe, in the
    columns of ``modalities``, split train/test; see
    ``partitioned.partition_client_data``.

    Read from the cache (``cache.py``) when this client's arrays were computed
    before; computed and cached otherwise.
    """
    task, source = settings.task, settings.resolved_source
    key = {
        "partitioner": settings.partitioner,
        "partition_id": partition_id,
        "num_partitions": settings.num_partitions,
        "modalities": list(modalities),
        "alpha": settings.alpha,
        "seed": settings.seed,
        "test_fraction": settings.test_fraction,
        "validation_fraction": settings.validation_fraction,
    }
    identity = source_identity(task, source)
    path = None if identity is None else client_data_path(task, identity, key)
    data = None if path is None else read_client_data(path)
    if data is None:
        # HF datasets and flwr-datasets: imported only when computing
        from blossom_app.data.partitioned import partition_client_data

        data = partition_client_data(settings, partition_id, tuple(modalities))
        if path is not None:
            write_client_data(path, data)
    return data


def warn_if_one_class(
    labels: np.ndarray, settings: DataSettings, partition_id: int
) -> None:
    """Log a WARNING when all of a client's train ``labels`` are one class: not
    an error (dirichlet with a small alpha makes such clients), but the client's
    model can only learn to predict that class."""
    classes = np.unique(labels)
    if len(classes) != 1:
        return
    if settings.partitioner == "dirichlet":
        fix = f"use a larger dirichlet-alpha (now {settings.alpha}) for less skew"
    else:
        fix = "give it examples of other classes for a model that tells them apart"
    log(
        WARNING,
        "Partition %d of %d ('%s' partitioner): all %d train examples are of "
        "class '%s', so its model can only learn to predict that class; %s.",
        partition_id,
        settings.num_partitions,
        settings.partitioner,
        len(labels),
        settings.task.class_names[classes[0]],
        fix,
    )


def warn_if_no_validation(
    data: ClientData, settings: DataSettings, partition_id: int
) -> None:
    """Log a WARNING when a client holding out validation windows (adaptive
    personalization) got none: not an error, but without evidence it can never
    choose a block of its own, so its personalized model is the federation's."""
    if settings.validation_fraction == 0 or len(data.validation):
        return
    log(
        WARNING,
        "Partition %d of %d has %d train windows and no validation windows, so "
        "adaptive personalization keeps the federation's blocks for it; use a "
        "larger validation-fraction (now %s) or fewer clients (modality-mix) for "
        "it to choose.",
        partition_id,
        settings.num_partitions,
        len(data.train),
        settings.validation_fraction,
    )
