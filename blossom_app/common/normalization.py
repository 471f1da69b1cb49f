"""Per-client input normalization: part of the model, never of the federation.

Each client standardizes every input channel with the mean and standard
deviation of its own training split. The statistics are buffers of the model
(``normalizers.<modality>.mean`` / ``.std``), so they are saved with the
client's private state, baked into the exported ONNX model (a device feeds raw
values) and written to the model card. They belong to the ``normalization``
block, which every policy keeps private: no message carries them (the
exported model holds them, like every private block, wherever the node writes
it: in simulation, the shared results directory).
"""

import numpy as np
import torch
from torch import nn

from blossom_app.benchmarks import ModalitySpec

#: Channels whose spread is below this are only centred (a constant channel
#: would otherwise be divided by zero).
MIN_STD = 1e-6


class InputNormalizer(nn.Module):
    """``(x - mean) / std`` per channel of a ``spec.shape``-shaped example (its
    channel axis: ``ModalitySpec.channel_axis``). Identity until ``fit``, and
    always for an input the task does not normalize (token ids)."""

    def __init__(self, spec: ModalitySpec) -> None:
        super().__init__()
        self.enabled = spec.normalize
        self.channel_axis = spec.channel_axis
        stats_shape = [1] * len(spec.shape)
        stats_shape[spec.channel_axis] = spec.shape[spec.channel_axis]
        self.register_buffer("mean", torch.zeros(stats_shape))
        self.register_buffer("std", torch.ones(stats_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std if self.enabled else x

    def fit(self, examples: np.ndarray) -> None:
        """Set the statistics from ``examples`` (``n x *shape``)."""
        if not self.enabled:
            return
        axes = tuple(a for a in range(examples.ndim) if a != 1 + self.channel_axis)
        mean = examples.mean(axis=axes, dtype=np.float64)
        std = examples.std(axis=axes, dtype=np.float64)
        std = np.where(std < MIN_STD, 1.0, std)
        self.mean.copy_(torch.from_numpy(mean).reshape(self.mean.shape))
        self.std.copy_(torch.from_numpy(std).reshape(self.std.shape))

    def statistics(self) -> dict[str, list[float]] | None:
        """Per-channel ``mean`` and ``std`` as plain lists (the model card);
        None for an input that is not normalized."""
        if not self.enabled:
            return None
        return {
            "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
        }
