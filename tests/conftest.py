"""Shared fixtures: a per-session BLOSSOM cache (tests never touch ~/.cache) and an
isolated environment for real ``flwr run`` calls."""

import contextlib
import os
import signal
import socket
import sys
import time
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pids_mentioning(*texts: str) -> dict[int, str]:
    """Pid -> command line of every process whose command line holds all
    ``texts`` (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        command = argv.decode(errors="replace").strip()
        if command and all(text in command for text in texts):
            found[int(entry.name)] = command
    return found


def stop_processes_mentioning(text: str, grace: float = 10.0) -> None:
    """Terminate (then kill) every process whose command line contains ``text``,
    and the processes they started (which may have renamed themselves, as
    Ray's agents do)."""
    pids = set(pids_mentioning(text))
    pids |= {child for pid in pids for child in descendants(pid)}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while (alive := [p for p in pids if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def descendants(root: int) -> set[int]:
    """The processes ``root`` started, and theirs (Linux /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


@pytest.fixture
def flwr_env(tmp_path: Path, blossom_cache: Path) -> Iterator[dict[str, str]]:
    """Environment for a real, isolated ``flwr run``: own FLWR_HOME, own ports,
    own results directory. The managed SuperLink is stopped afterwards."""
    home = tmp_path / "flwr-home"
    env = {
        **os.environ,
        "FLWR_HOME": str(home),
        "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(free_port()),
        "FLWR_LOCAL_CONTROL_API_PORT": str(free_port()),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "BLOSSOM_RESULTS_DIR": str(tmp_path / "results"),
        "BLOSSOM_CACHE_DIR": str(blossom_cache),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    yield env
    stop_processes_mentioning(str(home))


@pytest.fixture(autouse=True)
def task_identity() -> Iterator[None]:
    """Messages are created as the ServerApp process would create them."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    yield
    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = None
