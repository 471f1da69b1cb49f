"""A client's examples as arrays: what training, evaluation and export read."""

from dataclasses import dataclass

import numpy as np


@dataclass
class Split:
    """``inputs``: modality -> float32 ``n x *shape``; ``labels``: int64 ``n``."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class ClientData:
    """A client's training and test examples, and the validation examples held
    out of training when it needs them (adaptive personalization): disjoint,
    and for overlapping windows cut apart in time (``splits.py``)."""

    train: Split
    test: Split
    validation: Split | None = None
