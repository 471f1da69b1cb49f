"""Fusion modules: combine per-modality embeddings into one vector.

Both take ``dict[str, Tensor]`` (modality -> ``batch x dim``), iterate the
modalities present in sorted order, and are configured by a ``{modality: dim}``
map. Each modality owns its own projection (``projections.<modality>.*``), so a
client that lacks a modality neither builds nor sends its projection, and the
server averages each projection over exactly the clients holding it.
"""

import torch
from torch import nn


class AttentionFusion(nn.Module):
    """Softmax-weighted sum of per-modality projections (the BLOSSOM paper's fusion).

    ``h_m = relu(W_m e_m)``, ``a = softmax_m(v . tanh(h_m))``, ``out = sum_m a_m h_m``.
    The scorer ``v`` is shared by all modalities, so the weights adapt to
    whichever subset a client holds. Output: ``batch x out_dim``.
    """

    def __init__(self, dims: dict[str, int], out_dim: int) -> None:
        super().__init__()
        self.projections = nn.ModuleDict(
            {name: nn.Linear(dim, out_dim) for name, dim in sorted(dims.items())}
        )
        self.score = nn.Linear(out_dim, 1, bias=False)

    def forward(self, embeddings: dict[str, torch.Tensor]) -> torch.Tensor:
        projected = torch.stack(
            [
                torch.relu(self.projections[name](embeddings[name]))
                for name in sorted(embeddings)
            ],
            dim=1,
        )  # batch x modalities x out_dim
        weights = torch.softmax(self.score(torch.tanh(projected)), dim=1)
        return (weights * projected).sum(dim=1)


class ConcatFusion(nn.Module):
    """Concatenation followed by a linear layer and ReLU.

    ``relu(W [e_1; ...; e_M] + b)`` is computed as ``relu(sum_m W_m e_m + b)``
    with ``W_m`` the column block of modality ``m``: exactly concatenation with
    absent modalities zero-filled, but with each modality's block a parameter of
    its own. Output: ``batch x out_dim``.
    """

    def __init__(self, dims: dict[str, int], out_dim: int) -> None:
        super().__init__()
        self.projections = nn.ModuleDict(
            {
                name: nn.Linear(dim, out_dim, bias=False)
                for name, dim in sorted(dims.items())
            }
        )
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def forward(self, embeddings: dict[str, torch.Tensor]) -> torch.Tensor:
        total = sum(
            self.projections[name](embeddings[name]) for name in sorted(embeddings)
        )
        return torch.relu(total + self.bias)


FUSIONS: dict[str, type[nn.Module]] = {
    "attention": AttentionFusion,
    "concat": ConcatFusion,
}
