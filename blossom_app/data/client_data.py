"""One client's train and test arrays, from the cache when they are there."""

from blossom_app.benchmarks.task import Task
from blossom_app.data.cache import (
    client_data_path,
    read_client_data,
    source_identity,
    write_client_data,
)
from blossom_app.data.examples import ClientData


def load_client_data(
    task: Task,
    *,
    source: str,
    partitioner: str,
    partition_id: int,
    num_partitions: int,
    modalities: tuple[str, ...],
    alpha: float,
    seed: int,
    test_fraction: float,
    validation_fraction: float = 0.0,
) -> ClientData:
    """Partition ``partition_id`` of ``task``'s data from ``source`` (default:
    the task's), split train/test; see ``partitioned.partition_client_data``.

    Read from the cache (``cache.py``) when this client's arrays were computed
    before; computed and cached otherwise.
    """
    source = source or task.source
    settings = {
        "partitioner": partitioner,
        "partition_id": partition_id,
        "num_partitions": num_partitions,
        "modalities": list(modalities),
        "alpha": alpha,
        "seed": seed,
        "test_fraction": test_fraction,
        "validation_fraction": validation_fraction,
    }
    identity = source_identity(task, source)
    path = None if identity is None else client_data_path(task, identity, settings)
    data = None if path is None else read_client_data(path)
    if data is None:
        # HF datasets and flwr-datasets: imported only when computing
        from blossom_app.data.partitioned import partition_client_data

        data = partition_client_data(task, source=source, **settings)
        if path is not None:
            write_client_data(path, data)
    return data
