"""Shared fixtures: a per-session BLOSSOM cache, so tests never touch ~/.cache."""

from collections.abc import Iterator
from pathlib import Path

import datasets
import pytest

from blossom_app.benchmarks.watch import WATCH
from blossom_app.data import load_task_dataset


@pytest.fixture(scope="session", autouse=True)
def blossom_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``$BLOSSOM_CACHE_DIR`` at a temporary directory for the session."""
    path = tmp_path_factory.mktemp("blossom-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BLOSSOM_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def watch_dataset(blossom_cache: Path) -> datasets.Dataset:
    """The embedded watch dataset, built once per session into the session cache."""
    return load_task_dataset(WATCH)
