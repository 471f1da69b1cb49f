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

#: Channels whose spread is below this are only centred (a constant channel
#: would otherwise be divided by zero).
MIN_STD = 1e-6


class InputNormalizer(nn.Module):
    """``(x - mean) / std`` per channel, the channel being the last axis of a
    ``shape``-shaped example (``time x channels``). Identity until ``fit``."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        stats_shape = (1,) * (len(shape) - 1) + (shape[-1],)
        self.register_buffer("mean", torch.zeros(stats_shape))
        self.register_buffer("std", torch.ones(stats_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def fit(self, examples: np.ndarray) -> None:
        """Set the statistics from ``examples`` (``n x *shape``)."""
        axes = tuple(range(examples.ndim - 1))
        mean = examples.mean(axis=axes, dtype=np.float64)
        std = examples.std(axis=axes, dtype=np.float64)
        std = np.where(std < MIN_STD, 1.0, std)
        self.mean.copy_(torch.from_numpy(mean).reshape(self.mean.shape))
        self.std.copy_(torch.from_numpy(std).reshape(self.std.shape))

    def statistics(self) -> dict[str, list[float]]:
        """Per-channel ``mean`` and ``std`` as plain lists (the model card)."""
        return {
            "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
        }
