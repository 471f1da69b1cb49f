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

#: ITU-R 601-2 luma weights: RGB -> gray, as PIL converts to "L".
_LUMA = torch.tensor([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class ImagePixels:
    """An image -> ``channels x height x width`` float32: converted to
    ``channels`` (1: gray, 3: RGB), resized, scaled to [0, 1], standardized
    with ``mean`` and ``std`` per channel (the dataset's, fixed; each client's
    own statistics come on top, inside the model).

    The image is a PIL image (as a Hugging Face ``Image`` column decodes it),
    or an array of pixels of the shape ``stored`` declares: ``(H, W)``,
    ``(H, W, C)``, or a flat list of ``H * W * C`` values in that order;
    its pixels are divided by ``pixel_max`` (255 for 8-bit values, 1 for
    values already in [0, 1]).
    """

    channels: int
    height: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    stored: tuple[int, ...] = ()
    pixel_max: float = 255.0

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    @property
    def description(self) -> str:
        mode = "gray" if self.channels == 1 else "RGB"
        kept = f"array of {' x '.join(map(str, self.stored))}" if self.stored else ""
        return (
            f"standardized {mode} image ({self.height} x {self.width}): pixels / "
            f"{self.pixel_max:g}, then "
            f"(x - {list(self.mean)}) / {list(self.std)} per channel"
            + (f", from an {kept}" if kept else "")
            + " (blossom_app.benchmarks.image.ImagePixels)"
        )

    def __call__(self, value: object) -> np.ndarray:
        if hasattr(value, "convert"):
            image = value.convert("L" if self.channels == 1 else "RGB")
            tensor = v2.functional.pil_to_tensor(image).float() / self.pixel_max
        else:
            tensor = self._from_array(value)
        return self._transform(tensor).numpy()

    def _from_array(self, value: object) -> torch.Tensor:
        """``C x H x W`` in [0, 1] from an array of the ``stored`` shape."""
        if not self.stored:
            raise DataError(
                f"An image value is a {type(value).__name__}, not an image: for "
                "images stored as arrays declare their shape, e.g. "
                "ImagePixels(..., stored=(8, 8)) for a flat list of 64 gray pixels."
            )
        array = np.asarray(value, dtype=np.float32)
        try:
            array = array.reshape(self.stored)
        except ValueError:
            raise DataError(
                f"An image array of {array.size} values does not have the declared "
                f"shape {self.stored}."
            ) from None
        if array.ndim == 2:
            array = array[:, :, None]
        tensor = torch.from_numpy(array / self.pixel_max).permute(2, 0, 1)
        if tensor.shape[0] == 3 and self.channels == 1:  # luma, as PIL's "L"
            tensor = (_LUMA[:, None, None] * tensor).sum(dim=0, keepdim=True)
        elif tensor.shape[0] == 1 and self.channels == 3:
            tensor = tensor.expand(3, -1, -1)
        elif tensor.shape[0] != self.channels:
            raise DataError(
                f"An image array of {tensor.shape[0]} channels cannot become "
                f"{self.channels} channel(s)."
            )
        return tensor.contiguous()

    @cached_property
    def _transform(self) -> v2.Compose:
        """Built once per instance (every row of a column goes through it)."""
        return v2.Compose(
            [
                v2.Resize((self.height, self.width), antialias=True),
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
