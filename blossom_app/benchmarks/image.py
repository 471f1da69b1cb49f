"""Image inputs: a stored image to a normalized tensor (torchvision), and the
small CNN that encodes it."""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2

from blossom_app.benchmarks.task import ModalitySpec
from blossom_app.errors import DataError


@dataclass(frozen=True)
class ImagePixels:
    """An image (PIL, as a Hugging Face ``Image`` column decodes it) ->
    ``channels x height x width`` float32: converted to ``channels`` (1: gray,
    3: RGB), scaled to [0, 1], standardized with ``mean`` and ``std`` per
    channel (the dataset's, fixed; each client's own statistics come on top,
    inside the model)."""

    channels: int
    height: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    @property
    def description(self) -> str:
        mode = "gray" if self.channels == 1 else "RGB"
        return (
            f"standardized {mode} image ({self.height} x {self.width}): pixels / "
            "255, then "
            f"(x - {list(self.mean)}) / {list(self.std)} per channel "
            "(blossom_app.benchmarks.image.ImagePixels)"
        )

    def __call__(self, value: object) -> np.ndarray:
        if not hasattr(value, "convert"):
            raise DataError(
                f"An image value must be an image (a Hugging Face Image column); "
                f"found {type(value).__name__}."
            )
        image = value.convert("L" if self.channels == 1 else "RGB")
        return self._transform(image).numpy()

    @cached_property
    def _transform(self) -> v2.Compose:
        """Built once per instance (every row of a column goes through it)."""
        return v2.Compose(
            [
                v2.PILToTensor(),
                v2.Resize((self.height, self.width), antialias=True),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(list(self.mean), list(self.std)),
            ]
        )


class ImageEncoder(nn.Module):
    """Three blocks of Conv3x3 (channels→8→16→32), ReLU, MaxPool 2; flatten;
    Linear to ``embed_dim``. The paper's AV-MNIST image encoder without its
    BatchNorm layers (see ``audio.SpectrogramEncoder``)."""

    def __init__(self, shape: tuple[int, int, int], embed_dim: int = 32) -> None:
        super().__init__()
        widths = (shape[0], 8, 16, 32)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        self.conv = nn.Sequential(*layers, nn.Flatten())
        height, width = shape[1] // 8, shape[2] // 8
        self.project = nn.Linear(widths[-1] * height * width, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.conv(x))


def image_encoder(spec: ModalitySpec) -> nn.Module:
    """The image encoder for a ``channels x height x width`` modality."""
    return ImageEncoder(spec.shape, spec.embed_dim or 32)
