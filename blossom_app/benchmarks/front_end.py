"""Front ends: what a device feeds an exported model, and the torch module that
turns it into the features the model was trained on.

A modality whose ``features`` are computed from stored values (a log-mel
spectrogram from audio samples, standardized pixels from an image) can carry a
front end (``ModalitySpec.front_end``). The exporter puts its ``module()`` in
front of the model in the ONNX graph, so the exported model takes what a device
records (samples, pixels) and a device needs no torch to feed it. ``LogMel``
(with a ``sample_rate``) and ``ImagePixels`` are front ends.
"""

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from torch import nn


@dataclass(frozen=True)
class DeviceInput:
    """What a device feeds an exported model for one modality.

    ``shape``: per example (the batch axis comes first, on top); ``layout``:
    the axes' meaning, batch first; ``description``: the values, for the model
    card; ``tolerance``: the largest difference between the front end's
    module and the training features that the exporter accepts, in the
    features' units (it checks and reports the difference it measures).
    """

    shape: tuple[int, ...]
    layout: str
    description: str
    tolerance: float


@runtime_checkable
class FrontEnd(Protocol):
    """A feature computation that can run inside an exported model.

    ``device_input()`` is None when it cannot (e.g. a log-mel front end
    without a declared sampling rate); ``module()`` maps ``batch x *shape``
    raw values to ``batch x *features`` in float32, as calling the feature
    on each raw example as stored (``as_stored``: e.g. a PIL image) does;
    ``probe(count, rng)``: ``count x *shape`` raw examples, typical of the
    modality, on which the exporter checks that.
    """

    def device_input(self) -> DeviceInput | None: ...

    def module(self) -> nn.Module: ...

    def probe(self, count: int, rng: np.random.Generator) -> np.ndarray: ...

    def as_stored(self, example: np.ndarray) -> object: ...

    def __call__(self, value: object) -> np.ndarray: ...
