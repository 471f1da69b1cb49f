"""One typed, validated configuration built from run config and node config.

Every value is checked once, at start, with an error naming the key, the bad
value and the allowed values.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from blossom_app.benchmarks import Task, get_task
from blossom_app.common.blocks import Policy
from blossom_app.common.fusion import FUSIONS
from blossom_app.common.modality_mix import ModalityMix, parse_mix
from blossom_app.common.policies import ADAPTIVE, make_policy
from blossom_app.common.presets import PRESET, Scalar, resolve_preset
from blossom_app.common.training import CLIENT_OPTIMIZERS, TrainingSettings
from blossom_app.common.transport import WIRE_DTYPES
from blossom_app.data import PARTITIONERS, DataSettings
from blossom_app.errors import ConfigError

#: How a client composes its personalized model (``personalization.py``).
PERSONALIZATIONS = ("fixed", ADAPTIVE)
#: Server optimizers (``server.server_optimizers``), by ``server-optimizer``.
SERVER_OPTIMIZERS = ("fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad")


@dataclass(frozen=True)
class ServerOptimizerSettings:
    """``server-optimizer`` and its hyperparameters (``server-*`` keys).

    ``learning_rate`` 0 means the optimizer's default. The server builds its
    optimizer, with its per-key state, from these (``ServerOptimizer``).
    """

    name: str = "fedavg"
    learning_rate: float = 0.0
    momentum: float = 0.0
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 1e-3


def toml_value(value: Scalar) -> str:
    """A run-config value as TOML (``--run-config`` overrides, ``config.toml``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return repr(value)


def _get(config: Mapping[str, Scalar], key: str, kind: type) -> Scalar:
    if key not in config:
        raise ConfigError(key, None, f"a {kind.__name__}", "The key is missing.")
    value = config[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(key, value, f"a {kind.__name__}")
    return value


def _optional(
    config: Mapping[str, Scalar], key: str, kind: type, default: Scalar
) -> Scalar:
    """``config[key]`` checked to be a ``kind``, or ``default`` when absent."""
    return _get(config, key, kind) if key in config else default


def _with_columns(task: Task, text: str) -> Task:
    """``task`` reading the columns ``data-columns`` names (``"acc=body_acc,
    label=activity,group=user"``), for data whose column names differ."""
    allowed = "'' or comma-separated <key>=<column> with keys " + ", ".join(
        [*task.modality_names, "label", "group"]
    )
    pairs = [part.partition("=") for part in text.split(",") if part.strip()]
    if any(
        not key.strip() or not sep or not column.strip() for key, sep, column in pairs
    ):
        raise ConfigError("data-columns", text, allowed)
    try:
        return task.with_columns({k.strip(): c.strip() for k, _, c in pairs})
    except KeyError:
        raise ConfigError("data-columns", text, allowed) from None


def _positive(config: Mapping[str, Scalar], key: str, kind: type) -> Scalar:
    value = _get(config, key, kind)
    if value <= 0:
        raise ConfigError(key, value, f"a positive {kind.__name__}")
    return value


def _seed(config: Mapping[str, Scalar]) -> int:
    value = _get(config, "seed", int)
    if not 0 <= value < 2**31:
        raise ConfigError("seed", value, "an int in [0, 2**31)")
    return value


@dataclass(frozen=True)
class ExperimentConfig:
    """The experiment, from ``[tool.flwr.app.config]`` and ``--run-config``."""

    task: Task
    data: DataSettings
    mix: ModalityMix
    policy: Policy
    fusion: str
    num_server_rounds: int
    training: TrainingSettings
    fraction_train: float
    evaluate_every: int
    num_runs: int
    seed: int
    results_dir: str
    round_timeout: float
    export_onnx: bool
    export_int8: bool
    transport: str
    server_optimizer: ServerOptimizerSettings
    normalize_inputs: bool
    personalization: str
    preset: str

    def run_seed(self, run_index: int) -> int:
        """Seed of run ``run_index`` (``seed``, ``seed+1``, ...): initial weights,
        node sampling and local training; the data split and partitions always
        use ``seed``, so every run sees the same clients."""
        return self.seed + run_index

    @property
    def adaptive(self) -> bool:
        return self.personalization == ADAPTIVE

    @classmethod
    def from_run_config(
        cls,
        config: Mapping[str, Scalar],
        defaults: Mapping[str, Scalar] | None = None,
    ) -> "ExperimentConfig":
        """Validate ``config`` with its ``preset`` applied (``presets.py``;
        ``defaults``: the app's run-config defaults, read when needed)."""
        config = resolve_preset(config, defaults)
        task = _with_columns(
            get_task(str(_get(config, "dataset", str))),
            str(_optional(config, "data-columns", str, "")),
        )
        partitioner = _get(config, "partitioner", str)
        if partitioner not in PARTITIONERS:
            raise ConfigError("partitioner", partitioner, ", ".join(PARTITIONERS))
        if partitioner == "natural" and task.group_column is None:
            raise ConfigError(
                "partitioner",
                partitioner,
                "iid, dirichlet",
                f"Dataset '{task.name}' has no group column (such as a subject "
                "id) to partition by naturally.",
            )
        fusion = _get(config, "fusion", str)
        if fusion not in FUSIONS:
            raise ConfigError("fusion", fusion, ", ".join(FUSIONS))
        test_fraction = _get(config, "test-fraction", float)
        if not 0.0 < test_fraction < 1.0:
            raise ConfigError("test-fraction", test_fraction, "a float in (0, 1)")
        fraction_train = _get(config, "fraction-train", float)
        if not 0.0 < fraction_train <= 1.0:
            raise ConfigError("fraction-train", fraction_train, "a float in (0, 1]")
        transport = _get(config, "transport", str)
        if transport not in WIRE_DTYPES:
            raise ConfigError("transport", transport, ", ".join(WIRE_DTYPES))
        optimizer = _get(config, "server-optimizer", str)
        if optimizer not in SERVER_OPTIMIZERS:
            raise ConfigError(
                "server-optimizer", optimizer, ", ".join(SERVER_OPTIMIZERS)
            )
        if _get(config, "server-learning-rate", float) < 0:
            raise ConfigError(
                "server-learning-rate",
                config["server-learning-rate"],
                "a non-negative float (0: the optimizer's default)",
            )
        for key in ("server-momentum", "server-beta1", "server-beta2"):
            if not 0.0 <= _get(config, key, float) < 1.0:
                raise ConfigError(key, config[key], "a float in [0, 1)")
        for key in ("momentum", "weight-decay", "proximal-mu", "max-grad-norm"):
            if _get(config, key, float) < 0:
                raise ConfigError(key, config[key], "a non-negative float")
        client_optimizer = _get(config, "client-optimizer", str)
        if client_optimizer not in CLIENT_OPTIMIZERS:
            raise ConfigError(
                "client-optimizer", client_optimizer, ", ".join(CLIENT_OPTIMIZERS)
            )
        personalization = _get(config, "personalization", str)
        if personalization not in PERSONALIZATIONS:
            raise ConfigError(
                "personalization", personalization, ", ".join(PERSONALIZATIONS)
            )
        validation_fraction = _get(config, "validation-fraction", float)
        if not 0.0 < validation_fraction < 1.0:
            raise ConfigError(
                "validation-fraction", validation_fraction, "a float in (0, 1)"
            )
        mix = parse_mix(str(_get(config, "modality-mix", str)), task)
        num_server_rounds = _positive(config, "num-server-rounds", int)
        seed = _seed(config)
        return cls(
            task=task,
            data=DataSettings(
                task=task,
                source=str(_get(config, "data-source", str)),
                partitioner=partitioner,
                num_partitions=mix.num_clients,
                alpha=_positive(config, "dirichlet-alpha", float),
                seed=seed,
                test_fraction=test_fraction,
                # adaptive personalization chooses its blocks on held-out
                # train windows; fixed policies hold none out
                validation_fraction=validation_fraction * (personalization == ADAPTIVE),
            ),
            mix=mix,
            policy=make_policy(
                str(_get(config, "aggregation", str)),
                str(_get(config, "private-blocks", str)),
                task.modality_names,
                adaptive=personalization == ADAPTIVE,
            ),
            fusion=fusion,
            num_server_rounds=num_server_rounds,
            training=TrainingSettings(
                epochs=_positive(config, "local-epochs", int),
                batch_size=_positive(config, "batch-size", int),
                learning_rate=_positive(config, "learning-rate", float),
                num_rounds=num_server_rounds,
                optimizer=client_optimizer,
                momentum=_get(config, "momentum", float),
                weight_decay=_get(config, "weight-decay", float),
                max_grad_norm=_get(config, "max-grad-norm", float),
                proximal_mu=_get(config, "proximal-mu", float),
            ),
            fraction_train=fraction_train,
            evaluate_every=_positive(config, "evaluate-every", int),
            num_runs=_positive(config, "num-runs", int),
            seed=seed,
            results_dir=str(_get(config, "results-dir", str)),
            round_timeout=_positive(config, "round-timeout", float),
            export_onnx=_get(config, "export-onnx", bool),
            export_int8=_get(config, "export-int8", bool),
            transport=transport,
            server_optimizer=ServerOptimizerSettings(
                optimizer,
                learning_rate=_get(config, "server-learning-rate", float),
                momentum=_get(config, "server-momentum", float),
                beta_1=_get(config, "server-beta1", float),
                beta_2=_get(config, "server-beta2", float),
                tau=_positive(config, "server-tau", float),
            ),
            normalize_inputs=_get(config, "normalize-inputs", bool),
            personalization=personalization,
            preset=str(_get(config, PRESET, str)),
        )


def _device(config: Mapping[str, Scalar]) -> torch.device:
    """``device`` (``cpu``, ``cuda``, ``cuda:1``) if given, else CUDA if present."""
    text = _optional(config, "device", str, "")
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
    text = _optional(config, key, str, "")
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
            partition_id = _optional(config, "partition-id", int, 0)
            num_partitions = 1
            if partition_id < 0:
                raise ConfigError("partition-id", partition_id, "0 or more")
        else:
            partition_id = _get(config, "partition-id", int)
            num_partitions = _positive(config, "num-partitions", int)
            if not 0 <= partition_id < num_partitions:
                raise ConfigError(
                    "partition-id", partition_id, f"0 to {num_partitions - 1}"
                )
        modalities = None
        if "modalities" in config:
            text = str(_get(config, "modalities", str))
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
        num_threads = _optional(config, "num-threads", int, 0)
        if num_threads < 0:
            raise ConfigError(
                "num-threads", num_threads, "0 (torch's default) or more", _NODE_HINT
            )
        return cls(
            partition_id=partition_id,
            num_partitions=num_partitions,
            modalities=modalities,
            data_path=_optional(config, "data-path", str, ""),
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
