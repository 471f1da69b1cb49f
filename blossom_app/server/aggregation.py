"""Pure functions of block-wise aggregation: checking updates, averaging per key."""

from collections.abc import Mapping, Sequence

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


def aggregate_by_key(
    current: Arrays, updates: Sequence[tuple[Arrays, float]]
) -> dict[str, NDArray]:
    """Average every key over exactly the updates that carry it.

    ``updates`` are ``(arrays, weight)`` pairs, the weight being the client's
    number of training examples. A key no update carries keeps its current
    value; integer arrays (counters such as BatchNorm's ``num_batches_tracked``)
    are not averaged and keep their current value.
    """
    result: dict[str, NDArray] = {}
    for key, value in current.items():
        holders = [(arrays[key], weight) for arrays, weight in updates if key in arrays]
        total = sum(weight for _, weight in holders)
        if not holders or total <= 0 or not np.issubdtype(value.dtype, np.floating):
            result[key] = value
            continue
        mean = sum(array.astype(np.float64) * weight for array, weight in holders)
        result[key] = (mean / total).astype(value.dtype)
    return result
