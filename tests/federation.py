"""Helpers for the edge tests: read the systemd units in ``edge/systemd`` (so a
test can start exactly the command a unit starts) and start, watch and stop
SuperLink/SuperNode processes."""

import contextlib
import functools
import os
import re
import shlex
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from blossom_app.tools.flwr_runner import RunOutcome, run_app

EDGE = Path(__file__).parents[1] / "edge"
VENV_BIN = Path(sys.executable).parent


def tool_env(**extra: str) -> dict[str, str]:
    """This environment with the venv's ``bin`` first on PATH (flwr, hadolint…)."""
    path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "FLWR_TELEMETRY_ENABLED": "0", **extra}


@functools.cache
def cli_flags(*command: str) -> frozenset[str]:
    """The ``--flags`` that ``<command> --help`` of the installed Flower lists."""
    shown = subprocess.run(
        [*command, "--help"],
        capture_output=True,
        text=True,
        env=tool_env(FLWR_DISABLE_UPDATE_CHECK="1", COLUMNS="200"),
        check=False,
    )
    flags = frozenset(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", shown.stdout))
    assert flags, f"{' '.join(command)} --help showed no flags: {shown.stderr}"
    return flags


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """``section -> key -> values`` of a systemd unit file (a key may repeat,
    e.g. ``Environment``; ``\\`` continues a line, ``#``/``;`` lines are comments)."""
    sections: dict[str, dict[str, list[str]]] = {}
    section = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = sections.setdefault(line[1:-1], {})
            continue
        if section is None or "=" not in line:
            raise ValueError(f"{path}: cannot read line '{line}'")
        key, value = line.split("=", 1)
        section.setdefault(key.strip(), []).append(value.strip())
    return sections


def substitute(text: str, replacements: Mapping[str, str]) -> str:
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def unit_command(
    unit: Mapping[str, Mapping[str, list[str]]], replacements: Mapping[str, str]
) -> list[str]:
    """The unit's ``ExecStart`` as argv, with ``replacements`` applied.

    The units hold no quotes, ``$`` or ``%``, so shell-like splitting is what
    systemd does (checked in test_edge_systemd)."""
    [command] = unit["Service"]["ExecStart"]
    return shlex.split(substitute(command, replacements))


def unit_environment(
    unit: Mapping[str, Mapping[str, list[str]]], replacements: Mapping[str, str]
) -> dict[str, str]:
    """The unit's ``Environment=NAME=value`` lines, with ``replacements`` applied."""
    pairs = (line.split("=", 1) for line in unit["Service"].get("Environment", []))
    return {name: substitute(value, replacements) for name, value in pairs}


def command_options(argv: Sequence[str]) -> dict[str, str | None]:
    """``--flag value`` (or ``--flag=value``) pairs of a command line; ``None``
    for a bare flag."""
    found: dict[str, str | None] = {}
    for word, following in zip(argv, [*argv[1:], "--"], strict=True):
        if not word.startswith("--"):
            continue
        flag, equals, value = word.partition("=")
        if equals:
            found[flag] = value
        else:
            found[flag] = None if following.startswith("--") else following
    return found


def start(
    command: Sequence[str], env: Mapping[str, str], log: Path
) -> subprocess.Popen:
    """Start ``command`` with stdout and stderr going to ``log``."""
    with log.open("w") as stream:
        return subprocess.Popen(
            list(command), env=dict(env), stdout=stream, stderr=subprocess.STDOUT
        )


def stop(processes: Sequence[subprocess.Popen]) -> None:
    """Terminate, then kill what is left after 15 s."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_healthy(
    port: int, process: subprocess.Popen, log: Path, ca_cert: Path | None = None
) -> None:
    """Wait for a SuperLink's ``/health``: over TLS verified against ``ca_cert``,
    or plain HTTP without one."""
    context = (
        None if ca_cert is None else ssl.create_default_context(cafile=str(ca_cert))
    )
    scheme = "http" if ca_cert is None else "https"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"SuperLink exited ({process.returncode}): {log.read_text()}")
        try:
            url = f"{scheme}://127.0.0.1:{port}/health"
            with urllib.request.urlopen(url, context=context, timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"SuperLink not healthy within 60 s: {log.read_text()}")


def wait_for_log(
    log: Path, text: str, process: subprocess.Popen, timeout: float = 60
) -> str:
    """Wait until ``text`` appears in ``log`` (returns the log) or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text()
        if text in content:
            return content
        if process.poll() is not None:
            pytest.fail(f"exited ({process.returncode}) before '{text}': {content}")
        time.sleep(0.3)
    pytest.fail(f"'{text}' not in {log} within {timeout:.0f} s: {log.read_text()}")


class LoopbackFederation:
    """An insecure SuperLink and SuperNodes on 127.0.0.1 for ``flwr run``.

    ``env`` is the test's environment (``conftest.flwr_env``); SuperNodes are
    started with ``add_node`` and can be stopped (``kill``) and started again.
    Its connection is ``loopback`` in ``$FLWR_HOME/config.toml``.
    """

    def __init__(self, env: Mapping[str, str], logs: Path, port: int) -> None:
        self.env, self.logs, self.port = dict(env), logs, port
        self.address = f"127.0.0.1:{port}"
        self.nodes: dict[str, subprocess.Popen] = {}
        command = [
            "flower-superlink", "--insecure", "--host", "127.0.0.1",
            "--port", str(port), "--disable-runtime-dependency-installation",
        ]  # fmt: skip
        self.superlink = self._start(command, logs / "superlink.log")
        wait_until_healthy(port, self.superlink, logs / "superlink.log")
        home = Path(self.env["FLWR_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            '[superlink]\ndefault = "loopback"\n\n'
            f'[superlink.loopback]\naddress = "{self.address}"\ninsecure = true\n'
        )

    def add_node(self, name: str, node_config: str, port: int) -> subprocess.Popen:
        """Start SuperNode ``name`` (its own process group, log ``<name>.log``)."""
        command = [
            "flower-supernode", "--insecure", "--superlink", self.address,
            "--port", str(port), "--node-config", node_config,
        ]  # fmt: skip
        self.nodes[name] = self._start(command, self.logs / f"{name}.log")
        return self.nodes[name]

    def _start(self, command: list[str], log: Path) -> subprocess.Popen:
        """``command`` in a process group of its own (with what it starts)."""
        with log.open("a") as stream:
            return subprocess.Popen(
                command,
                env=self.env,
                stdout=stream,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, name: str, sig: int) -> None:
        """Send ``sig`` to SuperNode ``name`` and everything it started; wait."""
        process = self.nodes[name]
        os.killpg(process.pid, sig)
        process.wait(timeout=30)
        if sig != signal.SIGKILL:  # what a crash would leave behind goes too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def clientapp_starts(self, name: str) -> list[float]:
        """When each ``flwr-clientapp`` process of SuperNode ``name`` (its
        process group) started, in ``time.time()`` seconds: one per message it
        is executing right now."""
        group = self.nodes[name].pid
        boot = time.time() - float(Path("/proc/uptime").read_text().split()[0])
        starts = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                command = (entry / "cmdline").read_bytes()
                if (
                    b"flwr-clientapp" in command
                    and os.getpgid(int(entry.name)) == group
                ):
                    # field 22 of stat: start time in clock ticks since boot
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    starts.append(boot + int(fields[19]) / os.sysconf("SC_CLK_TCK"))
        return starts

    def log_text(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.logs.glob("*.log")))

    def close(self) -> None:
        """Stop every process group: SuperNodes, SuperLink, what they started."""
        processes = [*self.nodes.values(), self.superlink]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        stop(processes)
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def _saved_state(state_dir: Path) -> Path | None:
    files = list(state_dir.glob("partition-*/run-*-private.npz"))
    return files[0] if files else None


def trained_rounds(state_dir: Path) -> int:
    """Local rounds in the node's saved private state (0 before it exists)."""
    saved = _saved_state(state_dir)
    if saved is None:
        return 0
    try:
        with np.load(saved) as arrays:
            return int(arrays["__trained_rounds__"])
    except (OSError, ValueError, KeyError):  # being replaced right now
        return 0


def state_saved_at(state_dir: Path) -> float:
    """When the node last saved its private state (``time.time()`` seconds)."""
    saved = _saved_state(state_dir)
    assert saved is not None, f"no saved state in {state_dir}"
    return saved.stat().st_mtime


def wait_for(condition, what: str, timeout: float = 240) -> None:
    """Poll ``condition()`` until true, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


class BackgroundRun:
    """``flwr_runner.run_app`` in a thread, so a test can act on the federation
    while the run goes on; ``outcome()`` waits for it."""

    def __init__(self, *args, **kwargs) -> None:
        self._outcomes: list[RunOutcome] = []
        self._thread = threading.Thread(
            target=lambda: self._outcomes.append(run_app(*args, **kwargs))
        )
        self._thread.start()

    def outcome(self, timeout: float = 600) -> RunOutcome:
        self._thread.join(timeout=timeout)
        [outcome] = self._outcomes
        return outcome
