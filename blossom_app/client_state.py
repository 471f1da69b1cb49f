"""A client's private blocks, kept across rounds in ``context.state``.

``context.state`` survives rounds in simulation and deployment (in the
SuperNode's memory). When the node config names a ``state-dir``, the private
blocks are also written there, so a SuperNode restart keeps personalization.
A new run index starts from scratch: multi-run averaging needs fresh clients.
"""

from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context

PRIVATE = "blossom.private"
META = "blossom.meta"


def _state_file(state_dir: Path, run_id: int) -> Path:
    return state_dir / f"run-{run_id}-private.npz"


def load_private(
    context: Context, run_index: int, state_dir: Path | None
) -> ArrayRecord | None:
    """This client's private blocks for ``run_index``; None before it trained."""
    meta = context.state.config_records.get(META)
    if meta is not None and meta["run-index"] == run_index and PRIVATE in context.state:
        return context.state.array_records[PRIVATE]
    if state_dir is not None:
        path = _state_file(state_dir, context.run_id)
        if path.exists():
            with np.load(path) as saved:
                if int(saved["__run_index__"]) == run_index:
                    return ArrayRecord(
                        {
                            key: Array(saved[key])
                            for key in saved.files
                            if key != "__run_index__"
                        }
                    )
    return None


def save_private(
    context: Context, run_index: int, record: ArrayRecord, state_dir: Path | None
) -> None:
    """Keep ``record`` as this client's private blocks for ``run_index``."""
    context.state[PRIVATE] = record
    context.state[META] = ConfigRecord({"run-index": run_index})
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = _state_file(state_dir, context.run_id)
        arrays = {key: array.numpy() for key, array in record.items()}
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, __run_index__=np.int64(run_index), **arrays)
        tmp.replace(path)
