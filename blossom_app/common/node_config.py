"""What a SuperNode says about itself (``--node-config``), validated once.

In simulation a virtual node's node config is only its partition; on a device
it names the sensors, the data, the torch device and where state and models go.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from blossom_app.benchmarks import Task
from blossom_app.common.config_values import get, optional, positive
from blossom_app.common.modality_mix import ModalityMix
from blossom_app.common.presets import Scalar
from blossom_app.data import DataSettings
from blossom_app.errors import ConfigError


def _device(config: Mapping[str, Scalar]) -> torch.device:
    """``device`` (``cpu``, ``cuda``, ``cuda:1``) if given, else CUDA if present."""
    text = optional(config, "device", str, "")
    if not text:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    allowed = "cpu, cuda, cuda:<index>"
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ConfigError("device", text, allowed, _NODE_HINT) from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError("device", text, allowed, _NODE_HINT)
    count = torch.cuda.device_count()
    if device.type == "cuda" and (device.index or 0) >= count:
        allowed = f"cpu, or one of the {count} CUDA device(s) of this node"
        raise ConfigError("device", text, allowed, _NODE_HINT)
    return device


def _directory(config: Mapping[str, Scalar], key: str) -> Path | None:
    text = optional(config, key, str, "")
    return Path(text).expanduser() if text else None


_NODE_HINT = "Fix the SuperNode's --node-config."


@dataclass(frozen=True)
class NodeConfig:
    """What a SuperNode says about itself (``--node-config``).

    ``modalities``: the sensors this device has (``"acc,gyro"``); when absent,
    the run config's ``modality-mix`` decides by partition id (simulation).
    ``data-path``: the device's own dataset (else the run's ``data-source``),
    never split: ``partition-id`` then only names the client (default 0).
    ``device``: ``cpu``/``cuda``/``cuda:1`` (default: CUDA when available).
    ``state-dir``: where private blocks are also kept on disk.
    ``export-dir``: where the personalized model is exported after a run
    (default: ``<state-dir>/models``).
    ``num-threads``: torch CPU threads (0: torch's default).
    Every key is validated here, once; code reading a ``NodeConfig`` trusts it.
    """

    partition_id: int
    num_partitions: int
    modalities: tuple[str, ...] | None
    data_path: str
    device: torch.device
    state_dir: Path | None
    export_dir: Path | None
    num_threads: int

    KEYS = (
        "partition-id",
        "num-partitions",
        "modalities",
        "data-path",
        "device",
        "state-dir",
        "export-dir",
        "num-threads",
    )

    @classmethod
    def from_node_config(cls, config: Mapping[str, Scalar], task: Task) -> "NodeConfig":
        unknown = sorted(set(config) - set(cls.KEYS))
        if unknown:
            raise ConfigError("node-config", ", ".join(unknown), ", ".join(cls.KEYS))
        if "data-path" in config:
            # the device's own data, all of it its share: never split, and
            # partition-id only names this client in results and seeds
            if "num-partitions" in config:
                raise ConfigError(
                    "num-partitions",
                    config["num-partitions"],
                    "no value with data-path (the node's data is not split)",
                    _NODE_HINT,
                )
            partition_id = optional(config, "partition-id", int, 0)
            num_partitions = 1
            if partition_id < 0:
                raise ConfigError("partition-id", partition_id, "0 or more")
        else:
            partition_id = get(config, "partition-id", int)
            num_partitions = positive(config, "num-partitions", int)
            if not 0 <= partition_id < num_partitions:
                raise ConfigError(
                    "partition-id", partition_id, f"0 to {num_partitions - 1}"
                )
        modalities = None
        if "modalities" in config:
            text = str(get(config, "modalities", str))
            modalities = tuple(
                sorted({m.strip() for m in text.split(",") if m.strip()})
            )
            if not modalities or not set(modalities) <= set(task.modality_names):
                raise ConfigError(
                    "modalities",
                    text,
                    f"a comma-separated subset of {', '.join(task.modality_names)} "
                    f"(dataset '{task.name}')",
                    _NODE_HINT,
                )
        num_threads = optional(config, "num-threads", int, 0)
        if num_threads < 0:
            raise ConfigError(
                "num-threads", num_threads, "0 (torch's default) or more", _NODE_HINT
            )
        return cls(
            partition_id=partition_id,
            num_partitions=num_partitions,
            modalities=modalities,
            data_path=optional(config, "data-path", str, ""),
            device=_device(config),
            state_dir=_directory(config, "state-dir"),
            export_dir=_directory(config, "export-dir"),
            num_threads=num_threads,
        )

    def client_data(self, data: DataSettings) -> tuple[DataSettings, int]:
        """The run's ``data`` narrowed to this node, and its partition: the
        device's own ``data-path``, all of it (never split with other clients),
        else partition ``partition-id`` of ``num-partitions``."""
        if self.data_path:
            own = replace(data, source=self.data_path, partitioner="iid")
            return replace(own, num_partitions=1), 0
        return replace(data, num_partitions=self.num_partitions), self.partition_id

    def client_modalities(self, mix: ModalityMix) -> tuple[str, ...]:
        """This node's modalities: its node config, else the mix by partition id."""
        if self.modalities is not None:
            return self.modalities
        if self.num_partitions != mix.num_clients:
            raise ConfigError(
                "modality-mix",
                mix.text,
                f"a mix for {self.num_partitions} clients",
                f"The mix describes {mix.num_clients} clients but the federation "
                f"has {self.num_partitions} nodes. Run: flwr run . --stream "
                f'--federation-config "num-supernodes={mix.num_clients} '
                f'client-resources-num-cpus=1" (or choose a modality-mix that '
                f"adds up to {self.num_partitions}).",
            )
        return mix.modalities_for(self.partition_id)
