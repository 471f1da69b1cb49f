"""Encoder for multichannel time series (accelerometer, gyroscope, ECG leads).

The BLOSSOM paper's HAR encoder: a Conv1d stack followed by a GRU whose
outputs are mean-pooled over time. One class serves every IMU modality of
watch, UCI-HAR and KU-HAR, and (with a 64-unit GRU) PTB-XL's lead groups.
"""

import torch
from torch import nn

from blossom_app.benchmarks.task import ModalitySpec


class HAREncoder(nn.Module):
    """Conv1d(channels→32→64→128, k5) + GRU(128→hidden), mean-pooled.

    Input: ``batch x time x channels``. Output: ``batch x hidden``.
    """

    def __init__(self, channels: int, hidden: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        widths = (channels, 32, 64, 128)
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [
                nn.Conv1d(c_in, c_out, kernel_size=5, padding=2),
                nn.ReLU(),
                nn.MaxPool1d(2),
                nn.Dropout(dropout),
            ]
        self.conv = nn.Sequential(*layers)
        self.gru = nn.GRU(widths[-1], hidden, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.conv(x.transpose(1, 2))  # batch x 128 x time/8
        outputs, _ = self.gru(features.transpose(1, 2))  # batch x time/8 x hidden
        return outputs.mean(dim=1)


def har_encoder(spec: ModalitySpec, hidden: int = 128) -> nn.Module:
    """Build the HAR encoder for a ``time x channels`` modality (embedding size
    ``hidden``; a task picks it with ``functools.partial``)."""
    return HAREncoder(channels=spec.shape[-1], hidden=hidden)
