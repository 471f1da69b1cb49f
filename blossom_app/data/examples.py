"""A client's examples as arrays: what training, evaluation and export read."""

import math
from dataclasses import dataclass

import numpy as np

from ..errors import DataError


@dataclass
class Split:
    """``inputs``: modality -> float32 ``n x *shape``; ``labels``: int64 ``n``."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def carve(self, fraction: float) -> tuple["Split", "Split"]:
        """``(rest, held_out)``: the last ``ceil(fraction * n)`` examples held
        out, at least one each (a client's examples are in partition order: a
        random sample, for the partitioners shuffle)."""
        if len(self) < 2:
            raise DataError(
                f"Cannot hold out validation examples from {len(self)} example(s)."
            )
        held = min(max(1, math.ceil(round(fraction * len(self), 6))), len(self) - 1)
        cut = len(self) - held
        return self._take(slice(0, cut)), self._take(slice(cut, None))

    def _take(self, rows: slice) -> "Split":
        return Split({m: x[rows] for m, x in self.inputs.items()}, self.labels[rows])


@dataclass
class ClientData:
    """A client's training and test examples (disjoint, never overlapping), and
    the validation examples held out of training when it needs them."""

    train: Split
    test: Split
    validation: Split | None = None

    def with_validation(self, fraction: float) -> "ClientData":
        """This data with ``fraction`` of the training examples held out."""
        train, validation = self.train.carve(fraction)
        return ClientData(train, self.test, validation)
