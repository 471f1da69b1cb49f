"""A client's private blocks, kept across rounds in ``context.state``.

``context.state`` survives rounds in simulation and deployment (in the
SuperNode's memory). When the node config names a ``state-dir``, the private
blocks are also written there, so a SuperNode restart keeps personalization.
A new run index starts from scratch: multi-run averaging needs fresh clients.
With the blocks goes how many local training rounds they have been through in
this run, so a restart that lost them would show (the count starts again).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context

PRIVATE = "blossom.private"
META = "blossom.meta"
_RUN, _ROUNDS = "__run_index__", "__trained_rounds__"


@dataclass(frozen=True)
class PrivateState:
    """A client's private blocks and the local rounds they have trained in."""

    arrays: ArrayRecord
    rounds: int


def state_file(state_dir: Path, run_id: int) -> Path:
    """The on-disk copy of a client's private state for Flower run ``run_id``."""
    return state_dir / f"run-{run_id}-private.npz"


def load_private(
    context: Context, run_index: int, state_dir: Path | None
) -> PrivateState | None:
    """This client's private state for ``run_index``; None before it trained.

    Read from ``context.state``, else (after a restart) from ``state_dir``,
    and then kept in ``context.state`` so the disk is read once."""
    meta = context.state.config_records.get(META)
    if meta is not None and meta["run-index"] == run_index and PRIVATE in context.state:
        return PrivateState(context.state.array_records[PRIVATE], int(meta["rounds"]))
    if state_dir is None or not state_file(state_dir, context.run_id).exists():
        return None
    with np.load(state_file(state_dir, context.run_id)) as saved:
        if int(saved[_RUN]) != run_index:
            return None
        arrays = {k: Array(saved[k]) for k in saved.files if k not in (_RUN, _ROUNDS)}
        state = PrivateState(ArrayRecord(arrays), int(saved[_ROUNDS]))
    _keep_in_memory(context, run_index, state)
    return state


def _keep_in_memory(context: Context, run_index: int, state: PrivateState) -> None:
    context.state[PRIVATE] = state.arrays
    context.state[META] = ConfigRecord({"run-index": run_index, "rounds": state.rounds})


def save_private(
    context: Context, run_index: int, state: PrivateState, state_dir: Path | None
) -> None:
    """Keep ``state`` as this client's private state for ``run_index``."""
    _keep_in_memory(context, run_index, state)
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_file(state_dir, context.run_id)
        arrays = {key: array.numpy() for key, array in state.arrays.items()}
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            **{_RUN: np.int64(run_index), _ROUNDS: np.int64(state.rounds)},
            **arrays,
        )
        tmp.replace(path)
