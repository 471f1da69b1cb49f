"""The checkpoint file: one per experiment, ``<results dir>/checkpoint.npz``,
replaced after every ``checkpoint-every`` rounds.

A numpy ``.npz`` archive (read without pickle): the state's arrays under their
names, and ``header``, UTF-8 JSON holding the schema version, the code version,
the resolved run config the checkpoint belongs to, and the state's own fields
(``server_state.py``). It is written atomically (temporary file, fsync,
rename), so the last good checkpoint stays until the next one is complete.

Reading checks everything a resume relies on and says what is wrong and what
to do: a missing, truncated or corrupt file (every array the header lists is
read back, checksums included), a newer schema, a config that differs (each
key named) from the one it belongs to.
"""

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from blossom_app import __version__
from blossom_app.atomic_files import atomic_open
from blossom_app.common.config import toml_value

#: Version of the file's layout; a reader refuses a newer one.
SCHEMA = 1
#: The archive member holding the JSON header.
HEADER = "header"

#: Run-config keys a resumed run may change: how long to wait for nodes, how
#: often to checkpoint, where the results root is (the results directory is
#: the one resumed), and ``resume`` itself.
MAY_DIFFER = ("resume", "round-timeout", "checkpoint-every", "results-dir")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message says why and what to do."""


def write_checkpoint(
    path: Path,
    arrays: Mapping[str, NDArray],
    state: Mapping[str, object],
    run_config: Mapping[str, object],
) -> int:
    """Write ``arrays`` and the JSON-able ``state`` to ``path`` atomically with
    the schema and code versions and ``run_config``; return its size in bytes."""
    header = {
        "schema": SCHEMA,
        "version": __version__,
        "config": dict(run_config),
        "arrays": sorted(arrays),  # read back, so a damaged archive shows
        "state": state,
    }
    text = json.dumps(header, default=_plain, allow_nan=True)
    members = {HEADER: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **members, **arrays)
        size = handle.tell()
    return size


def _plain(value: object) -> object:
    """numpy scalars and arrays in the state as JSON values."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot save {type(value).__name__} in a checkpoint")


def read_header(path: Path) -> dict:
    """The checkpoint's header (schema, version, config, state), checked."""
    return _read(path, arrays=False)[0]


def read_checkpoint(path: Path) -> tuple[dict, dict[str, NDArray]]:
    """The checkpoint's header and arrays, checked."""
    return _read(path, arrays=True)


def _read(path: Path, arrays: bool) -> tuple[dict, dict[str, NDArray]]:
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}: the run stopped before its first checkpoint "
            "was written, or it ran with checkpoint-every = 0. Start it again "
            "without resume."
        )
    try:
        with np.load(path, allow_pickle=False) as saved:
            header = json.loads(bytes(saved[HEADER]).decode("utf-8"))
            loaded = {k: saved[k] for k in saved.files if k != HEADER} if arrays else {}
    except Exception as error:
        # Damage fails in many ways: zipfile (BadZipFile; NotImplementedError
        # for a compression method or version, RuntimeError for an "encrypted"
        # flag), numpy's header parser (ValueError, tokenize.TokenError), json,
        # a missing header (KeyError).
        raise CheckpointError(
            f"The checkpoint {path} is truncated or corrupt ({error}). It is "
            "replaced atomically, so this is damage from outside the app (a full "
            "disk, a partial copy): restore it from a copy, or start the run again "
            "without resume."
        ) from None
    schema = header.get("schema") if isinstance(header, dict) else None
    if not isinstance(schema, int) or not {"config", "state"} <= set(header):
        raise CheckpointError(f"{path} is not a BLOSSOM checkpoint (no schema).")
    if schema > SCHEMA:
        raise CheckpointError(
            f"The checkpoint {path} has schema {schema}, written by BLOSSOM "
            f"{header.get('version', '?')}; this is BLOSSOM {__version__}, which "
            f"reads schema {SCHEMA} and older. Resume it with the newer version."
        )
    if arrays and sorted(loaded) != header.get("arrays"):
        missing = sorted(set(header.get("arrays", [])) - set(loaded))
        raise CheckpointError(
            f"The checkpoint {path} is corrupt: {len(missing)} of its arrays cannot "
            f"be read (e.g. {missing[:3]}). Restore it from a copy, or start the run "
            "again without resume."
        )
    return header, loaded


def config_differences(
    saved: Mapping[str, object],
    current: Mapping[str, object],
    defaults: Mapping[str, object],
) -> list[str]:
    """Each key whose value differs between the checkpoint's config and this
    run's (``key: checkpoint <a>, this run <b>``), except the keys that
    ``MAY_DIFFER``. A key missing on one side means its default."""
    lines = []
    for key in sorted((set(saved) | set(current)) - set(MAY_DIFFER)):
        before = saved.get(key, defaults.get(key))
        after = current.get(key, defaults.get(key))
        if before != after:
            lines.append(
                f"{key}: checkpoint {_shown(before)}, this run {_shown(after)}"
            )
    return lines


def _shown(value: object) -> str:
    return "(absent)" if value is None else toml_value(value)
