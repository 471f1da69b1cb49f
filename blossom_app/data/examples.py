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

    @property
    def nbytes(self) -> int:
        """Bytes of its arrays."""
        return self.labels.nbytes + sum(a.nbytes for a in self.inputs.values())


@dataclass
class ClientData:
    """A client's training and test examples, and the validation examples held
    out of training when it needs them (adaptive personalization): disjoint,
    and for overlapping windows cut apart in time (``splits.py``)."""

    train: Split
    test: Split
    validation: Split | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of its arrays."""
        splits = (self.train, self.test, self.validation)
        return sum(split.nbytes for split in splits if split is not None)
