"""The experiment's one typed, validated configuration, from the run config
(``[tool.flwr.app.config]`` and ``--run-config``, its preset applied).

Every value is checked once, at start, with an error naming the key, the bad
value and the allowed values (``config_values.py``). A node's own facts are
its ``NodeConfig`` (``node_config.py``).
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass

from blossom_app.benchmarks import Task, get_task
from blossom_app.common.blocks import Policy
from blossom_app.common.config_values import choice, get, optional, positive
from blossom_app.common.fusion import FUSIONS
from blossom_app.common.modality_mix import ModalityMix, parse_mix
from blossom_app.common.policies import ADAPTIVE, FIXED, make_policy
from blossom_app.common.presets import PRESET, Scalar, resolve_preset
from blossom_app.common.training import CLIENT_OPTIMIZERS, TrainingSettings
from blossom_app.common.transport import WIRE_DTYPES
from blossom_app.data import PARTITIONERS, DataSettings, feature_identities
from blossom_app.errors import ConfigError

#: How a client composes its personalized model (``personalization.py``).
PERSONALIZATIONS = (FIXED, ADAPTIVE)
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


def _seed(config: Mapping[str, Scalar]) -> int:
    value = get(config, "seed", int)
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
    checkpoint_every: int
    resume: str
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
            get_task(str(get(config, "dataset", str))),
            str(optional(config, "data-columns", str, "")),
        )
        feature_identities(task)  # a feature the cache cannot key: said here, once
        partitioner = choice(config, "partitioner", PARTITIONERS)
        if partitioner == "natural" and task.group_column is None:
            raise ConfigError(
                "partitioner",
                partitioner,
                "iid, dirichlet",
                f"Dataset '{task.name}' has no group column (such as a subject "
                "id) to partition by naturally.",
            )
        fusion = choice(config, "fusion", FUSIONS)
        test_fraction = get(config, "test-fraction", float)
        if not 0.0 < test_fraction < 1.0:
            raise ConfigError("test-fraction", test_fraction, "a float in (0, 1)")
        fraction_train = get(config, "fraction-train", float)
        if not 0.0 < fraction_train <= 1.0:
            raise ConfigError("fraction-train", fraction_train, "a float in (0, 1]")
        transport = choice(config, "transport", WIRE_DTYPES)
        optimizer = choice(config, "server-optimizer", SERVER_OPTIMIZERS)
        if get(config, "server-learning-rate", float) < 0:
            raise ConfigError(
                "server-learning-rate",
                config["server-learning-rate"],
                "a non-negative float (0: the optimizer's default)",
            )
        for key in ("server-momentum", "server-beta1", "server-beta2"):
            if not 0.0 <= get(config, key, float) < 1.0:
                raise ConfigError(key, config[key], "a float in [0, 1)")
        for key in ("momentum", "weight-decay", "proximal-mu", "max-grad-norm"):
            if get(config, key, float) < 0:
                raise ConfigError(key, config[key], "a non-negative float")
        min_steps = get(config, "min-local-steps", int)
        if min_steps < 0:
            raise ConfigError("min-local-steps", min_steps, "0 (off) or a positive int")
        client_optimizer = choice(config, "client-optimizer", CLIENT_OPTIMIZERS)
        personalization = choice(config, "personalization", PERSONALIZATIONS)
        validation_fraction = get(config, "validation-fraction", float)
        if not 0.0 < validation_fraction < 1.0:
            raise ConfigError(
                "validation-fraction", validation_fraction, "a float in (0, 1)"
            )
        mix = parse_mix(str(get(config, "modality-mix", str)), task)
        num_server_rounds = positive(config, "num-server-rounds", int)
        seed = _seed(config)
        checkpoint_every = get(config, "checkpoint-every", int)
        if checkpoint_every < 0:
            raise ConfigError(
                "checkpoint-every", checkpoint_every, "0 (off) or a positive int"
            )
        return cls(
            task=task,
            data=DataSettings(
                task=task,
                source=str(get(config, "data-source", str)),
                partitioner=partitioner,
                num_partitions=mix.num_clients,
                alpha=positive(config, "dirichlet-alpha", float),
                seed=seed,
                test_fraction=test_fraction,
                # adaptive personalization chooses its blocks on held-out
                # train windows; fixed policies hold none out
                validation_fraction=validation_fraction * (personalization == ADAPTIVE),
            ),
            mix=mix,
            policy=make_policy(
                str(get(config, "aggregation", str)),
                str(get(config, "private-blocks", str)),
                task.modality_names,
                adaptive=personalization == ADAPTIVE,
            ),
            fusion=fusion,
            num_server_rounds=num_server_rounds,
            training=TrainingSettings(
                epochs=positive(config, "local-epochs", int),
                min_steps=min_steps,
                batch_size=positive(config, "batch-size", int),
                learning_rate=positive(config, "learning-rate", float),
                num_rounds=num_server_rounds,
                optimizer=client_optimizer,
                momentum=get(config, "momentum", float),
                weight_decay=get(config, "weight-decay", float),
                max_grad_norm=get(config, "max-grad-norm", float),
                proximal_mu=get(config, "proximal-mu", float),
            ),
            fraction_train=fraction_train,
            evaluate_every=positive(config, "evaluate-every", int),
            num_runs=positive(config, "num-runs", int),
            seed=seed,
            results_dir=str(get(config, "results-dir", str)),
            round_timeout=positive(config, "round-timeout", float),
            checkpoint_every=checkpoint_every,
            resume=str(get(config, "resume", str)),
            export_onnx=get(config, "export-onnx", bool),
            export_int8=get(config, "export-int8", bool),
            transport=transport,
            server_optimizer=ServerOptimizerSettings(
                optimizer,
                learning_rate=get(config, "server-learning-rate", float),
                momentum=get(config, "server-momentum", float),
                beta_1=get(config, "server-beta1", float),
                beta_2=get(config, "server-beta2", float),
                tau=positive(config, "server-tau", float),
            ),
            normalize_inputs=get(config, "normalize-inputs", bool),
            personalization=personalization,
            preset=str(get(config, PRESET, str)),
        )
