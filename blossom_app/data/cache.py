"""BLOSSOM's data cache on disk, and each client's arrays kept in it.

A client's train/test arrays depend only on its task, the source data, the
split and partition settings and the code that computes them; they are
written once (``.npz``) and read back by every later process — a simulated
client process, a restarted SuperNode, the next run of a sweep — with numpy
alone, without importing HF ``datasets`` and ``flwr-datasets`` (startup time
and memory of every client process). A source that changes on disk, any
change to the code in this package, or to a modality's feature function or
its parameters (``feature_identity.py``), gives a new key. Hub datasets are not
cached here (HF caches their downloads itself).
"""

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from blossom_app.atomic_files import atomic_open
from blossom_app.benchmarks.task import Task
from blossom_app.data.examples import ClientData, Split
from blossom_app.data.feature_identity import (
    UnkeyableFeature,
    defined_in,
    feature_identity,
)
from blossom_app.errors import DataError

_CODE = sorted(Path(__file__).parent.glob("*.py"))


def cache_dir() -> Path:
    """Where BLOSSOM caches data: ``$BLOSSOM_CACHE_DIR``, else ``~/.cache/blossom``."""
    configured = os.environ.get("BLOSSOM_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "blossom"


def source_identity(task: Task, source: str) -> list | None:
    """What identifies ``source``'s content: the embedded data (checked by its
    sha256 when built) and its builder's code, or every local file's path,
    size and modification time; None for a hub id."""
    if source == "embedded":
        return ["embedded", _digest([Path(task.build_embedded.__code__.co_filename)])]
    path = Path(source).expanduser()
    if not path.exists():
        return None
    files = sorted(p for p in [path, *path.rglob("*")] if p.is_file())
    return [str(path.resolve())] + [
        [str(p.relative_to(path)) if p != path else "", p.stat().st_size]
        + [p.stat().st_mtime_ns]
        for p in files
    ]


def feature_identities(task: Task) -> dict[str, list | None]:
    """Each modality's ``features`` as the cache key holds them (identical in
    every process: ``feature_identity.py``). A feature that cannot be keyed
    is a ``DataError`` naming the modality, the task and what to do; the
    ServerApp meets it once, at start (``ExperimentConfig``)."""
    identities = {}
    for spec in task.modalities:
        if spec.features is None:
            identities[spec.name] = None
            continue
        try:
            identities[spec.name] = feature_identity(spec.features)
        except UnkeyableFeature as error:
            where = defined_in(spec.features)
            raise DataError(
                f"The features of modality '{spec.name}' of dataset '{task.name}' "
                f"(defined in {where}) cannot be cached: {error}. Give that parameter "
                "a repr that is the same in every process (a number, a string, a "
                "tuple, a dataclass of those), or compute it inside the function."
            ) from None
    return identities


def _digest(paths: list[Path]) -> str:
    sha = hashlib.sha256()
    for path in paths:
        sha.update(path.read_bytes())
    return sha.hexdigest()


def client_data_path(task: Task, identity: list, settings: Mapping) -> Path:
    """The cache file of one client's arrays."""
    key = {
        "task": [
            task.name,
            task.label_column,
            task.group_column,
            task.class_names,
            task.overlapping_windows,
        ],
        "modalities": [[m.name, m.column, m.shape] for m in task.modalities],
        "features": feature_identities(task),
        "labels": repr(task.label_map),
        "source": identity,
        "settings": dict(settings),
        "code": _digest(_CODE),
    }
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return cache_dir() / "clients" / f"{task.name}-{name[:32]}.npz"


def read_client_data(path: Path) -> ClientData | None:
    """The arrays cached at ``path``, or None if there are none."""
    try:
        with np.load(path) as stored:
            arrays = dict(stored)
    except FileNotFoundError:
        return None
    parts = ("train", "test", "validation")
    return ClientData(
        *(_split(arrays, part) for part in parts if f"{part}/labels" in arrays)
    )


def _split(arrays: dict[str, np.ndarray], part: str) -> Split:
    inputs = {
        key.split("/", 2)[2]: value
        for key, value in arrays.items()
        if key.startswith(f"{part}/inputs/")
    }
    return Split(inputs, arrays[f"{part}/labels"])


def write_client_data(path: Path, data: ClientData) -> None:
    """Cache ``data`` at ``path`` (written atomically, so a concurrent reader
    sees the whole file or none)."""
    arrays = {}
    parts = (
        ("train", data.train),
        ("test", data.test),
        ("validation", data.validation),
    )
    for part, split in (p for p in parts if p[1] is not None):
        arrays[f"{part}/labels"] = split.labels
        arrays |= {f"{part}/inputs/{m}": x for m, x in split.inputs.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as out:
        np.savez(out, **arrays)
