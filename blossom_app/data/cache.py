"""BLOSSOM's data cache on disk, and each client's arrays kept in it.

A client's train/test arrays depend only on its task, the source data, the
split and partition settings and the code that computes them; they are
written once (``.npz``) and read back by every later process — a simulated
client process, a restarted SuperNode, the next run of a sweep — with numpy
alone, without importing HF ``datasets`` and ``flwr-datasets`` (startup time
and memory of every client process). A source that changes on disk, or any
change to the code in this package, gives a new key. Hub datasets are not
cached here (HF caches their downloads itself).
"""

import hashlib
import inspect
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from blossom_app.atomic_files import atomic_open
from blossom_app.benchmarks.task import Task
from blossom_app.data.examples import ClientData, Split

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


def _feature_code(task: Task) -> list[Path]:
    """The source files of the task's feature functions (audio, text, images)."""
    files = {
        Path(inspect.getfile(type(m.features)))
        for m in task.modalities
        if m.features is not None
    }
    return sorted(files)


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
        "modalities": [
            [m.name, m.column, m.shape, repr(m.features)] for m in task.modalities
        ],
        "labels": repr(task.label_map),
        "source": identity,
        "settings": dict(settings),
        "code": _digest(_CODE + _feature_code(task)),
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
