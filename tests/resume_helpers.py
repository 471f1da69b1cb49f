"""Helpers for the resume tests: a simulation to kill (the whole process tree,
SIGKILL), a watch that kills it the moment a file appears, a check that every
file a results directory holds parses, and the comparison of two runs'
metrics value for value per round and partition (../shared/DECISIONS.md 8)."""

import contextlib
import ctypes
import json
import os
import select
import signal
import struct
import subprocess
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import pids_mentioning
from PIL import Image

from blossom_app.reporting.csv_files import read_rows
from blossom_app.server.checkpoint import read_checkpoint, read_header
from blossom_app.tools.flwr_runner import format_overrides

APP = Path(__file__).parents[1]


def descendants(roots: list[int]) -> set[int]:
    """``roots`` and every process below them (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return (Path(f"/proc/{pid}/cmdline").read_bytes()).replace(b"\0", b" ").decode()
    return ""


class KillableSimulation:
    """``flwr run <app> --stream`` of a simulation, started in the background;
    ``kill()`` SIGKILLs the whole Flower process tree: ``flwr run``, the managed
    SuperLink (found by the test's ``FLWR_HOME``), its SuperExec, the
    simulation process that runs the ServerApp, and Ray."""

    def __init__(
        self, overrides: Mapping[str, object], env: dict[str, str], nodes: int
    ) -> None:
        self.env = env
        self.log = Path(env["FLWR_HOME"]).parent / f"killed-{time.time_ns()}.log"
        command = [
            "flwr", "run", str(APP), "--stream",
            "--run-config", format_overrides(overrides),
            # as run_app and `blossom run` size it: one CPU (thread) per client
            "--federation-config",
            f"num-supernodes={nodes} client-resources-num-cpus=1",
        ]  # fmt: skip
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def tree(self) -> set[int]:
        roots = [self.process.pid, *pids_mentioning(self.env["FLWR_HOME"])]
        return descendants(roots) - {os.getpid()}

    def server_pid(self) -> int | None:
        """The process running the ServerApp (``flwr-simulation``)."""
        found = [p for p in self.tree() if "flwr-simulation" in command_line(p)]
        return found[0] if found else None

    def kill(self) -> None:
        for _ in range(3):  # Ray may start a process while we kill
            for pid in self.tree():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)
        self.process.wait(timeout=30)

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 300
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f"the run ended before {what}: {self.log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}: {self.log.read_text()}")
            time.sleep(0.05)


def experiment_dir(results: Path) -> Path | None:
    """The newest experiment directory under ``results`` (None yet)."""
    found = sorted(p.parent for p in results.rglob("config.toml"))
    return found[-1] if found else None


def checkpointed_round(experiment: Path | None) -> int:
    """The last round ``experiment``'s checkpoint holds; -1 before it exists."""
    if experiment is None or not (experiment / "checkpoint.npz").is_file():
        return -1
    try:
        return int(read_header(experiment / "checkpoint.npz")["state"]["server_round"])
    except Exception:  # noqa: BLE001 - being replaced right now: look again
        return -1


#: inotify events: a file created (opened for writing), a file renamed in.
CREATED, RENAMED_IN = 0x100, 0x80
_libc = ctypes.CDLL(None, use_errno=True)


class KillOnCreate:
    """SIGKILL ``pid`` the moment a file whose name contains ``fragment`` is
    created (``event`` CREATED) or renamed into place (RENAMED_IN) in one of
    ``directories`` (Linux inotify: no polling delay). ``fired`` says it
    happened."""

    def __init__(
        self, directories: list[Path], fragment: str, pid: int, event: int
    ) -> None:
        self.fd = _libc.inotify_init1(os.O_NONBLOCK)
        assert self.fd >= 0, ctypes.get_errno()
        for directory in directories:
            watch = _libc.inotify_add_watch(self.fd, str(directory).encode(), event)
            assert watch >= 0, (directory, ctypes.get_errno())
        self.fragment, self.pid = fragment.encode(), pid
        self.fired = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                continue
            data = os.read(self.fd, 65536)
            offset = 0
            while offset < len(data):
                _, _, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0")
                offset += 16 + length
                if self.fragment in name:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, signal.SIGKILL)
                    self.fired.set()
                    return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self.fd)


def _parse(path: Path) -> None:
    """Read ``path`` the way its kind is read; raise if it does not parse."""
    suffix = path.suffix
    if path.name == "checkpoint.npz":
        read_checkpoint(path)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as saved:
            for name in saved.files:
                saved[name]
    elif suffix == ".csv":
        read_rows(path)
    elif suffix == ".toml":
        tomllib.loads(path.read_text())
    elif suffix == ".json":
        json.loads(path.read_text())
    elif suffix == ".png":
        with Image.open(path) as image:
            image.load()
    elif suffix == ".onnx":
        onnx.checker.check_model(onnx.load(str(path)))
    elif suffix == ".pt":
        torch.load(path, weights_only=True)
    elif suffix in (".log", ".md"):
        path.read_text()
    else:
        raise AssertionError(f"a file of an unknown kind: {path}")


def every_file_parses(directory: Path) -> list[Path]:
    """Assert every file under ``directory`` parses; return the leftovers of
    writes cut short (``.<name>.<random>.partial*``, which nothing reads)."""
    leftovers = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        if path.name.startswith(".") and ".partial" in path.name:
            leftovers.append(path)
            continue
        try:
            _parse(path)
        except Exception as error:  # noqa: BLE001 - named in the failure
            pytest.fail(f"{path} does not parse after the kill: {error!r}")
    return leftovers


def metrics(run: Path) -> dict[str, dict]:
    """A run's client and aggregated metrics, keyed by (round, partition) and
    round, without node ids and wall-clock seconds."""

    def values(row: dict) -> dict:
        return {
            k: v
            for k, v in row.items()
            if k != "node_id" and not k.endswith("_seconds")
        }

    clients = {
        (r["round"], r["partition_id"]): values(r)
        for r in read_rows(run / "client_metrics.csv")
    }
    aggregated = {
        r["round"]: values(r) for r in read_rows(run / "aggregated_metrics.csv")
    }
    return {"client_metrics.csv": clients, "aggregated_metrics.csv": aggregated}


def assert_same_metrics(resumed: Path, reference: Path) -> None:
    """The two runs' metrics are equal value for value per round and
    partition; a failure names the first cells that differ."""
    got, want = metrics(resumed), metrics(reference)
    for name in want:
        assert got[name].keys() == want[name].keys(), name
        differ = [
            (key, column, got[name][key].get(column), value)
            for key, row in want[name].items()
            for column, value in row.items()
            if got[name][key].get(column) != value
        ]
        assert not differ, f"{name}: (row, column, resumed, reference) {differ[:5]}"
