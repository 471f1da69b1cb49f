"""One client as its handlers see it: config, data, device, personalized model."""

from dataclasses import dataclass
from pathlib import Path

import torch
from flwr.app import ArrayRecord, Context

from .blocks import format_modalities, guard_outgoing
from .client_state import load_private, save_private
from .config import ExperimentConfig, NodeConfig
from .data import ClientData, load_client_data
from .model import MultimodalModel, build_model
from .training import pick_device


@dataclass(frozen=True)
class LocalClient:
    """Everything a ClientApp handler needs, read once from the Context."""

    experiment: ExperimentConfig
    node: NodeConfig
    modalities: tuple[str, ...]
    data: ClientData
    device: torch.device

    @classmethod
    def from_context(cls, context: Context) -> "LocalClient":
        experiment = ExperimentConfig.from_run_config(context.run_config)
        node = NodeConfig.from_node_config(context.node_config, experiment.task)
        if node.num_threads:
            torch.set_num_threads(node.num_threads)
        modalities = node.client_modalities(experiment.mix)
        data = load_client_data(
            experiment.task,
            source=node.data_path or experiment.data_source,
            # a device's own data (data-path) is not split with other clients
            partitioner="iid" if node.data_path else experiment.partitioner,
            partition_id=node.partition_id,
            num_partitions=node.num_partitions,
            modalities=modalities,
            alpha=experiment.dirichlet_alpha,
            seed=experiment.seed,
            test_fraction=experiment.test_fraction,
        )
        return cls(experiment, node, modalities, data, pick_device(node.device))

    @property
    def state_dir(self) -> Path | None:
        """Where this client's private blocks are also kept on disk, one folder
        per partition and modality set, so nodes may share a ``state-dir``."""
        if self.node.state_dir is None:
            return None
        name = (
            f"partition-{self.node.partition_id}-{format_modalities(self.modalities)}"
        )
        return self.node.state_dir / name

    def describe_device(self) -> str:
        """``cuda``/``cuda:1``, or ``cpu`` with its torch thread count."""
        if self.device.type == "cpu":
            return f"cpu, {torch.get_num_threads()} thread(s)"
        return str(self.device)

    def personalized_model(
        self, context: Context, run_index: int, shared: ArrayRecord
    ) -> MultimodalModel:
        """The global shared blocks this client holds + its own private blocks."""
        exp = self.experiment
        model = build_model(
            exp.task, self.modalities, exp.fusion, exp.run_seed(run_index)
        )
        state = model.state_dict()
        private = load_private(context, run_index, self.state_dir)
        for record in (private, shared):
            if record is not None:
                state.update(record.to_torch_state_dict())
        model.load_state_dict(state, strict=True)
        return model

    def keep_private(
        self, context: Context, run_index: int, model: MultimodalModel
    ) -> None:
        state = model.state_dict()
        private = self.experiment.policy.private_keys(state)
        record = ArrayRecord({k: state[k] for k in private})
        save_private(context, run_index, record, self.state_dir)

    def shared_update(self, model: MultimodalModel) -> ArrayRecord:
        """The shared blocks of ``model``, checked to carry no private key."""
        state = model.state_dict()
        shared = self.experiment.policy.shared_keys(state)
        return guard_outgoing(
            ArrayRecord({k: state[k].cpu() for k in shared}), self.experiment.policy
        )
