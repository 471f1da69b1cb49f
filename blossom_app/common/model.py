"""The multimodal model: one encoder per held modality, a fusion module, a head."""

import torch
from torch import nn

from blossom_app.benchmarks import Task
from blossom_app.common.fusion import FUSIONS
from blossom_app.common.normalization import InputNormalizer
from blossom_app.data import Split


class MultimodalModel(nn.Module):
    """``head(fusion({m: encoders[m](normalizers[m](x_m))}))`` over the modalities
    this model holds.

    A client builds the model with exactly its modalities: absent encoders do not
    exist, and the fusion combines the present embeddings only. Training,
    evaluation and export therefore treat a missing modality the same way.
    Parameter names follow the block layout: ``encoders.<modality>.*``,
    ``fusion.*``, ``head.*``; the inputs' statistics are buffers
    ``normalizers.<modality>.*`` (``normalization.py``).
    """

    def __init__(
        self,
        normalizers: dict[str, InputNormalizer],
        encoders: dict[str, nn.Module],
        fusion: nn.Module,
        head: nn.Module,
    ) -> None:
        super().__init__()
        self.normalizers = nn.ModuleDict(dict(sorted(normalizers.items())))
        self.encoders = nn.ModuleDict(dict(sorted(encoders.items())))
        self.fusion = fusion
        self.head = head
        #: The blocks this client took from its own training rather than from
        #: the federation (``LocalClient.personalized_model`` sets them).
        self.own_blocks: frozenset[str] = frozenset()

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.encoders.keys())

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Map ``{modality: batch x *shape}`` to logits ``batch x classes``."""
        embeddings = {
            name: encoder(self.normalizers[name](inputs[name]))
            for name, encoder in self.encoders.items()
        }
        return self.head(self.fusion(embeddings))

    def normalization(self) -> dict[str, dict[str, list[float]]]:
        """Per modality, the ``mean`` and ``std`` its input is standardized with."""
        return {name: n.statistics() for name, n in self.normalizers.items()}

    def fit_normalization(self, split: Split) -> None:
        """Standardize each input with the statistics of ``split`` (a client's
        own training examples)."""
        for name, normalizer in self.normalizers.items():
            normalizer.fit(split.inputs[name])


def build_model(
    task: Task, modalities: tuple[str, ...], fusion: str, seed: int
) -> MultimodalModel:
    """Build the model for ``modalities`` of ``task``; ``seed`` fixes the weights.

    Only private blocks keep their local initial weights: shared blocks are
    overwritten by the server's before a client trains them.
    """
    torch.manual_seed(seed)
    normalizers = {name: InputNormalizer(task.modality(name)) for name in modalities}
    encoders = {name: task.encoder(task.modality(name)) for name in sorted(modalities)}
    fusion_module = FUSIONS[fusion](
        {name: task.embedding_size(name) for name in modalities}, task.fusion_dim
    )
    hidden = task.head_hidden
    widths = (task.fusion_dim, *(hidden if isinstance(hidden, tuple) else (hidden,)))
    layers: list[nn.Module] = []
    for width_in, width_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    head = nn.Sequential(*layers, nn.Linear(widths[-1], task.num_classes))
    return MultimodalModel(normalizers, encoders, fusion_module, head)


def parameter_keys(
    task: Task, modalities: tuple[str, ...], fusion: str
) -> frozenset[str]:
    """The state-dict keys of a client model holding ``modalities``."""
    return frozenset(build_model(task, modalities, fusion, seed=0).state_dict())
