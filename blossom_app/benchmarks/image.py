"""Image inputs: a stored image to a normalized tensor (torchvision), the same
as a front end of an exported model (``PixelsFrontEnd``), and the small CNN
that encodes it."""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2

from blossom_app.benchmarks.front_end import DeviceInput
from blossom_app.benchmarks.task import ModalitySpec
from blossom_app.errors import DataError

#: ITU-R 601-2 luma weights: RGB -> gray, as PIL converts to "L".
_LUMA = torch.tensor([0.299, 0.587, 0.114])
#: Largest difference accepted between the exported pixel front end and
#: ``ImagePixels``, in standardized units (float32 rounding).
FRONT_END_TOLERANCE = 1e-4


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

    It is a front end (``front_end.py``): an exported model takes the pixels
    as stored (``stored``; without it, ``height x width`` for gray and
    ``height x width x channels`` for RGB, resized on the device) and does the
    rest itself.
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

    def device_input(self) -> DeviceInput:
        shape = self.stored or (
            (self.height, self.width)
            if self.channels == 1
            else (self.height, self.width, self.channels)
        )
        mode = "gray" if len(shape) == 2 else f"{shape[2]}-channel"
        return DeviceInput(
            shape=shape,
            layout="batch x height x width"
            + (" x channels" if len(shape) == 3 else ""),
            description=(
                f"{mode} pixels {' x '.join(map(str, shape))}, values 0 to "
                f"{self.pixel_max:g} as stored"
            ),
            tolerance=FRONT_END_TOLERANCE,
        )

    def module(self) -> "PixelsFrontEnd":
        return PixelsFrontEnd(self)

    def probe(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform random pixels in [0, ``pixel_max``] (whole numbers for
        images stored as such: 8-bit PIL images)."""
        pixels = self.pixel_max * rng.random((count, *self.device_input().shape))
        return (pixels if self.stored else np.round(pixels)).astype(np.float32)

    def as_stored(self, example: np.ndarray) -> object:
        """An array of the ``stored`` shape as it is; else the 8-bit PIL image
        a Hugging Face ``Image`` column decodes to."""
        if self.stored:
            return example
        from PIL import Image

        return Image.fromarray(example.astype(np.uint8))

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


class PixelsFrontEnd(nn.Module):
    """``ImagePixels`` on ``batch x height x width [x channels]`` stored pixels.

    Resizing is linear and separable, so it is two fixed matrices, each
    torchvision's antialiased resize of an identity image along one axis;
    the channel conversion and standardization are ``ImagePixels``'.
    """

    def __init__(self, pixels: ImagePixels) -> None:
        super().__init__()
        shape = pixels.device_input().shape
        self.pixels = pixels
        self.stored_channels = shape[2] if len(shape) == 3 else 1
        self.resized = shape[:2] != (pixels.height, pixels.width)
        rows = _resize_matrix(shape[0], pixels.height)
        columns = _resize_matrix(shape[1], pixels.width)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("columns_t", columns.T.contiguous(), persistent=False)
        self.register_buffer("luma", _LUMA.view(1, 3, 1, 1), persistent=False)
        for name, values in (("mean", pixels.mean), ("std", pixels.std)):
            stats = torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)
            self.register_buffer(name, stats, persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.stored_channels == 1:
            image = pixels.unsqueeze(1)
        else:
            image = pixels.permute(0, 3, 1, 2)
        image = image / self.pixels.pixel_max
        if self.stored_channels == 3 and self.pixels.channels == 1:
            image = (image * self.luma).sum(dim=1, keepdim=True)
        elif self.stored_channels == 1 and self.pixels.channels == 3:
            image = image.repeat(1, 3, 1, 1)
        if self.resized:
            image = self.rows @ image @ self.columns_t
        return (image - self.mean) / self.std


def _resize_matrix(size: int, target: int) -> torch.Tensor:
    """``target x size``: torchvision's antialiased resize along one axis."""
    identity = torch.eye(size).unsqueeze(0)  # 1 x size x size: one column each
    return v2.functional.resize(identity, [target, size], antialias=True)[0]


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
