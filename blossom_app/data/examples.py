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
    """A client's training and test examples (disjoint, never overlapping)."""

    train: Split
    test: Split
