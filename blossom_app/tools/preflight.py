"""What ``blossom run`` and ``blossom sweep`` check of the data before starting
Flower, so that a mistake every client would make is said once, with the fix
worded for these commands (the number of clients comes from ``modality-mix``).

Under a plain ``flwr run`` the clients find the same mistakes themselves.
"""

from blossom_app.common.config import ExperimentConfig
from blossom_app.common.modality_mix import ModalityMix
from blossom_app.data import count_groups
from blossom_app.errors import ConfigError


def check_data(config: ExperimentConfig) -> None:
    """A ``natural`` partition needs one client per group of the data: a
    ConfigError naming ``modality-mix`` and a mix that fits, if it has not."""
    data = config.data
    if data.partitioner != "natural":
        return
    groups = count_groups(data.task, data.resolved_source)
    if groups == config.mix.num_clients:
        return
    raise ConfigError(
        "modality-mix",
        config.mix.text,
        f"a mix of {groups} clients",
        f"The dataset has {groups} groups ('{data.task.group_column}') and "
        f"partitioner 'natural' makes one client per group, but the mix has "
        f"{config.mix.num_clients}. Run with --run-config "
        f"\"modality-mix='{scaled(config.mix, groups)}'\" (the same sets, "
        f"{groups} clients), or choose partitioner 'iid' or 'dirichlet'.",
    )


def scaled(mix: ModalityMix, clients: int) -> str:
    """``mix``'s modality sets, ``clients`` clients in about its proportions."""
    total = mix.num_clients
    counts = [clients * count // total for _, count in mix.groups]
    by_remainder = sorted(
        range(len(counts)),
        key=lambda i: -(clients * mix.groups[i][1] % total),
    )
    for index in by_remainder[: clients - sum(counts)]:
        counts[index] += 1
    return ",".join(
        f"{'+'.join(modalities)}={count}"
        for (modalities, _), count in zip(mix.groups, counts, strict=True)
        if count
    )
