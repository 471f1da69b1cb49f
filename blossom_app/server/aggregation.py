"""Pure functions of block-wise aggregation: checking updates, averaging per key."""

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

Arrays = Mapping[str, NDArray]


class InvalidUpdate(ValueError):
    """A client's update cannot be aggregated; the message says why."""


def check_update(
    update: Arrays,
    reference: Arrays,
    sent: set[str],
    private: set[str],
    wire: Mapping[str, np.dtype] | None = None,
) -> None:
    """Raise InvalidUpdate unless ``update`` may be aggregated into ``reference``.

    ``sent`` are the keys the server sent this client (its shared blocks);
    ``private`` the keys the policy keeps on clients; ``wire`` the dtype each
    key travels in (default: the reference's). Rejected: a private key, a key
    the client was not sent (unknown), a wrong shape or dtype, a non-finite
    value.
    """
    leaked = sorted(set(update) & private)
    if leaked:
        raise InvalidUpdate(f"carries private keys {leaked}")
    unknown = sorted(set(update) - sent)
    if unknown:
        raise InvalidUpdate(f"carries keys it was not sent {unknown}")
    for key, array in update.items():
        expected = reference[key]
        if array.shape != expected.shape:
            raise InvalidUpdate(
                f"key {key!r} has shape {array.shape}, expected {expected.shape}"
            )
        dtype = expected.dtype if wire is None else wire[key]
        if array.dtype != dtype:
            raise InvalidUpdate(
                f"key {key!r} has dtype {array.dtype}, expected {dtype}"
            )
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise InvalidUpdate(f"key {key!r} has non-finite values")


class BlockwiseMean:
    """The weighted mean of every key over exactly the updates that carry it,
    with updates added one at a time (``add``) and none of them kept.

    Each key keeps a float64 running sum and its total weight: adding the same
    updates in the same order gives the same bits, however many there are.
    A key no update carries keeps its ``current`` value; integer arrays
    (counters such as BatchNorm's ``num_batches_tracked``) are not averaged
    and keep their current value.
    """

    def __init__(self, current: Arrays) -> None:
        self.current = current
        self._sums: dict[str, NDArray[np.float64]] = {}
        self._weights: dict[str, float] = {}

    def add(self, update: Arrays, weight: float) -> None:
        """Add ``update`` with ``weight`` (the client's number of training
        examples) to the mean of each key it carries."""
        for key, array in update.items():
            if not np.issubdtype(self.current[key].dtype, np.floating):
                continue
            weighted = array.astype(np.float64) * weight
            if key in self._sums:
                self._sums[key] += weighted
            else:
                self._sums[key] = weighted
            self._weights[key] = self._weights.get(key, 0.0) + weight

    def result(self) -> dict[str, NDArray]:
        """Every key of ``current``: its mean where updates carried it."""
        result: dict[str, NDArray] = {}
        for key, value in self.current.items():
            total = self._weights.get(key, 0.0)
            if total <= 0:
                result[key] = value
            else:
                result[key] = (self._sums[key] / total).astype(value.dtype)
        return result
