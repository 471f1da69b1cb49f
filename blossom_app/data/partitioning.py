"""Split one dataset among clients with flwr-datasets partitioners."""

import datasets
from flwr_datasets.partitioner import (
    DirichletPartitioner,
    IidPartitioner,
    NaturalIdPartitioner,
    Partitioner,
)

from blossom_app.errors import ConfigError

# Smallest partition DirichletPartitioner accepts before resampling: low enough
# for a few thousand examples over 10 clients at alpha 0.1 (larger values make it
# resample and give up after 10 tries), high enough for a train and a test example.
MIN_DIRICHLET_PARTITION = 2


def make_partitioner(
    name: str,
    num_partitions: int,
    *,
    alpha: float,
    seed: int,
    label_column: str,
    group_column: str | None,
) -> Partitioner:
    """Build the partitioner called ``name`` (one of PARTITIONERS, validated by
    ``ExperimentConfig``; ``natural`` needs a ``group_column``).

    ``iid``: equal random shares. ``dirichlet``: label skew, each class shared
    out with Dirichlet(``alpha``) proportions. ``natural``: one partition per
    value of ``group_column`` (e.g. per subject).
    """
    if name == "iid":
        return IidPartitioner(num_partitions=num_partitions)
    if name == "dirichlet":
        return DirichletPartitioner(
            num_partitions=num_partitions,
            partition_by=label_column,
            alpha=float(alpha),
            min_partition_size=MIN_DIRICHLET_PARTITION,
            self_balancing=False,
            seed=seed,
        )
    return NaturalIdPartitioner(partition_by=group_column)


def assign_dataset(
    partitioner: Partitioner,
    dataset: datasets.Dataset,
    *,
    num_partitions: int,
    seed: int,
) -> None:
    """Give ``partitioner`` a seeded shuffle of ``dataset`` to partition.

    Shuffling first, as flwr-datasets' FederatedDataset does, matters:
    IidPartitioner takes contiguous shards and DirichletPartitioner contiguous
    runs of each class, which on data ordered by recording would hand clients
    whole recordings. The shuffled copy is held in memory: partitioners call
    ``Dataset.unique``, which on an index-mapped dataset would otherwise write a
    cache file next to the source data.

    Raises ConfigError when ``natural`` finds a number of groups other than
    ``num_partitions``, or ``dirichlet`` cannot sample partitions of at least
    MIN_DIRICHLET_PARTITION examples.
    """
    shuffled = dataset.shuffle(seed=seed, keep_in_memory=True)
    partitioner.dataset = shuffled.flatten_indices(keep_in_memory=True)
    try:
        made = partitioner.num_partitions  # DirichletPartitioner samples here
    except ValueError as error:  # DirichletPartitioner gave up resampling
        raise ConfigError(
            "partitioner",
            "dirichlet",
            "iid, natural, or dirichlet with a larger alpha",
            f"flwr-datasets: {error} Raise dirichlet-alpha or run fewer clients.",
        ) from error
    if isinstance(partitioner, NaturalIdPartitioner) and made != num_partitions:
        raise ConfigError(
            "partitioner",
            "natural",
            f"'natural' with {made} clients, iid, dirichlet",
            f"The dataset has {made} distinct groups and 'natural' makes one "
            f"client per group, but {num_partitions} clients were requested. Run "
            f"{made} clients: a modality-mix of {made} clients and, under a plain "
            f'flwr run, --federation-config "num-supernodes={made}" (blossom run '
            "sizes the federation from the mix); or choose another partitioner.",
        )
