"""One client as its handlers see it: config, data, device, personalized model.

The parsed config and the client's data depend only on the run config and the
node config, so they are derived once per process and reused by every message
(a simulation process serves many virtual nodes and rounds), within
``SETUP_BYTES`` of data. What changes from message to message, the private
blocks, lives in the client's ``PrivateStore`` (``client_state.py``).
"""

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord

from blossom_app import __version__
from blossom_app.benchmarks.task import Task
from blossom_app.client.client_state import PrivateState, PrivateStore
from blossom_app.client.personalization import choose_blocks, describe_own
from blossom_app.common.blocks import block_of, format_modalities, guard_outgoing
from blossom_app.common.config import ExperimentConfig, Scalar
from blossom_app.common.model import MultimodalModel, build_model
from blossom_app.common.node_config import NodeConfig
from blossom_app.common.profile import NodeProfile
from blossom_app.common.protocol import OWN_BLOCKS
from blossom_app.common.training import (
    Evaluation,
    evaluate,
    example_losses,
    local_seed,
    train,
)
from blossom_app.common.transport import encode
from blossom_app.data import (
    ClientData,
    load_client_data,
    warn_if_no_validation,
    warn_if_one_class,
)

ConfigItems = tuple[tuple[str, Scalar], ...]


@dataclass(frozen=True)
class ClientSetup:
    """What a node's run config and node config determine."""

    experiment: ExperimentConfig
    node: NodeConfig
    modalities: tuple[str, ...]
    data: ClientData


#: The client data a process keeps set up between messages. A simulation
#: process serves many clients in turn; past this, the least recently served
#: one is set up again when its next message comes (its data read back from
#: the on-disk cache), so the process's memory does not grow with the clients.
SETUP_BYTES = 256 * 10**6


@lru_cache(maxsize=8)
def _experiment(run_config: ConfigItems) -> ExperimentConfig:
    return ExperimentConfig.from_run_config(dict(run_config))


class _Setups:
    """The set-ups of the clients a process served last, within ``budget``
    bytes of their data (at least one)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._kept: OrderedDict[tuple[ConfigItems, ConfigItems], ClientSetup] = (
            OrderedDict()
        )
        self._bytes = 0

    def get(self, run_config: ConfigItems, node_config: ConfigItems) -> ClientSetup:
        key = (run_config, node_config)
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        setup = self._kept[key] = _setup(run_config, node_config)
        self._bytes += setup.data.nbytes
        while self._bytes > self.budget and len(self._kept) > 1:
            _, dropped = self._kept.popitem(last=False)
            self._bytes -= dropped.data.nbytes
        return setup


def _setup(run_config: ConfigItems, node_config: ConfigItems) -> ClientSetup:
    experiment = _experiment(run_config)
    node = NodeConfig.from_node_config(dict(node_config), experiment.task)
    modalities = node.client_modalities(experiment.mix)
    settings, partition_id = node.client_data(experiment.data)
    data = load_client_data(settings, partition_id, modalities)
    warn_if_one_class(data.train.labels, settings, partition_id)
    warn_if_no_validation(data, settings, partition_id)
    return ClientSetup(experiment, node, modalities, data)


_SETUPS = _Setups(SETUP_BYTES)


@lru_cache(maxsize=16)
def _initial_state(
    task: Task, modalities: tuple[str, ...], fusion: str, seed: int
) -> dict[str, torch.Tensor]:
    """The weights ``build_model`` starts a client with (the private blocks
    keep them until the client trains), built once per process."""
    return build_model(task, modalities, fusion, seed).state_dict()


@lru_cache(maxsize=8)
def _working_model(
    task: Task, modalities: tuple[str, ...], fusion: str
) -> MultimodalModel:
    """The process's one model of an architecture, which every message loads
    its weights into: loading takes a fifth of the time of copying a model,
    and a message is handled at a time."""
    return build_model(task, modalities, fusion, seed=0)


@dataclass(frozen=True)
class LocalClient:
    """A client's setup and its ``Context`` (whose state holds the private
    blocks of a node with no disk for them)."""

    setup: ClientSetup
    context: Context

    @classmethod
    def from_context(cls, context: Context) -> "LocalClient":
        setup = _SETUPS.get(
            tuple(sorted(context.run_config.items())),
            tuple(sorted(context.node_config.items())),
        )
        if setup.node.num_threads:
            torch.set_num_threads(setup.node.num_threads)
        return cls(setup, context)

    @property
    def experiment(self) -> ExperimentConfig:
        return self.setup.experiment

    @property
    def data(self) -> ClientData:
        return self.setup.data

    @property
    def device(self) -> torch.device:
        return self.setup.node.device

    def private_store(self, config: ConfigRecord) -> PrivateStore:
        """Where this client's private blocks are kept for the experiment and
        run a message's ``config`` names: on disk under the node's
        ``state-dir`` (or the server's, in a simulation), one folder per
        partition and modality set, so nodes may share a ``state-dir``."""
        return PrivateStore.for_message(
            self.context, config, self.setup.node.state_dir, self.folder_name
        )

    @property
    def folder_name(self) -> str:
        """``partition-<id>-<modality set>``: this client's folder name."""
        modalities = format_modalities(self.setup.modalities)
        return f"partition-{self.setup.node.partition_id}-{modalities}"

    def profile(self) -> NodeProfile:
        """What this node tells the server about itself."""
        if self.device.type == "cpu":
            device = f"cpu, {torch.get_num_threads()} thread(s)"
        else:
            device = str(self.device)
        return NodeProfile(
            node_id=self.context.node_id,
            modalities=self.setup.modalities,
            partition_id=self.setup.node.partition_id,
            train_examples=len(self.data.train),
            test_examples=len(self.data.test),
            device=device,
            version=__version__,
        )

    def personalized_model(
        self,
        run_index: int,
        shared: ArrayRecord,
        private: PrivateState | None = None,
    ) -> MultimodalModel:
        """The global shared blocks this client holds + its own private blocks
        (its input normalization among them). Under adaptive personalization,
        also its own version of each shared block for which that does better
        on its validation split (``personalization.py``). ``private``: the
        client's state (None before it trained). ``own_blocks`` of the model
        says which blocks are the client's own.

        The model is the process's working model of its architecture: the
        next call for the same architecture loads other weights into it."""
        exp = self.experiment
        architecture = (exp.task, self.setup.modalities, exp.fusion)
        model = _working_model(*architecture)
        model.zero_grad(set_to_none=True)  # the last message's gradients
        model.load_state_dict(_initial_state(*architecture, exp.run_seed(run_index)))
        if exp.normalize_inputs:  # kept statistics (below) are the same or win
            model.fit_normalization(self.data.train)
        state = model.state_dict()
        own = {} if private is None else dict(private.arrays)
        state.update(own)
        state.update(shared.to_torch_state_dict())
        model.load_state_dict(state, strict=True)
        model.own_blocks = frozenset(
            block_of(k) for k in exp.policy.private_keys(state)
        )
        if exp.adaptive and own:
            candidates = sorted({block_of(key) for key in shared})
            model.own_blocks |= choose_blocks(
                model, own, candidates, self._validation_losses
            )
        return model

    def _validation_losses(self, model: MultimodalModel) -> np.ndarray:
        return example_losses(model, self.data.validation, device=self.device)

    def train(
        self,
        model: MultimodalModel,
        run_index: int,
        server_round: int,
        received: ArrayRecord,
    ) -> float:
        """One round of local training of ``model``; the mean training loss.
        FedProx (``proximal-mu``) pulls towards ``received``, the shared blocks
        as the server sent them (not the client's own, under adaptive
        personalization)."""
        exp, settings = self.experiment, self.experiment.training
        validation = self.data.validation
        # a client holding out a validation split makes as many steps per
        # round as it would on all its windows: the same compute
        windows = len(self.data.train) + (len(validation) if validation else 0)
        return train(
            model,
            self.data.train,
            settings,
            server_round=server_round,
            device=self.device,
            seed=local_seed(
                exp.run_seed(run_index), self.setup.node.partition_id, server_round
            ),
            anchor=received.to_torch_state_dict() if settings.proximal_mu else None,
            windows=windows,
        )

    def evaluate(self, model: MultimodalModel) -> Evaluation:
        """``model`` on this client's test split."""
        return evaluate(
            model,
            self.data.test,
            num_classes=self.experiment.task.num_classes,
            device=self.device,
        )

    def evaluation_records(
        self, model: MultimodalModel
    ) -> tuple[MetricRecord, ConfigRecord]:
        """An evaluation as replies carry it: the metrics of ``model`` on the
        test split, and which of its blocks are the client's own."""
        own = ConfigRecord({OWN_BLOCKS: describe_own(model.own_blocks)})
        return self.evaluate(model).to_metrics(), own

    def keep_private(
        self,
        store: PrivateStore,
        server_round: int,
        model: MultimodalModel,
        before: PrivateState | None,
    ) -> None:
        """Keep the private blocks of the model this client just trained in
        ``server_round`` from ``before`` (all of its blocks under adaptive
        personalization: its own versions)."""
        state = model.state_dict()
        exp = self.experiment
        kept = list(state) if exp.adaptive else exp.policy.private_keys(state)
        rounds = 1 + (before.rounds if before else 0)
        store.save(server_round, PrivateState({k: state[k] for k in kept}, rounds))

    def shared_update(self, state: Mapping[str, torch.Tensor]) -> ArrayRecord:
        """The shared blocks of a model's ``state`` as they travel, checked to
        carry no private key."""
        shared = self.experiment.policy.shared_keys(state)
        return guard_outgoing(
            encode({k: state[k] for k in shared}, self.experiment.transport),
            self.experiment.policy,
        )
