"""Run this Flower app with ``flwr run`` and report how the run really ended.

``flwr run --stream`` exits 0 even when the run failed, so the outcome is read
back with ``flwr ls --run-id <id> --format json``. Used by ``blossom run``,
``blossom sweep`` and the end-to-end tests.
"""

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from blossom_app.common.config import Scalar, toml_value


@dataclass(frozen=True)
class RunOutcome:
    """A finished ``flwr run``: its id, final status and everything it printed."""

    run_id: int | None
    status: str
    output: str

    @property
    def ok(self) -> bool:
        return self.status == "finished:completed"


def format_overrides(values: Mapping[str, Scalar]) -> str:
    """``{"a": 1, "b": "x"}`` -> ``a=1 b="x"`` (TOML values for ``--run-config``)."""
    return " ".join(f"{key}={toml_value(value)}" for key, value in values.items())


def run_status(run_id: int, env: Mapping[str, str] | None = None) -> str:
    """Status of a run as the SuperLink reports it (e.g. ``finished:failed``)."""
    listing = subprocess.run(
        ["flwr", "ls", "--run-id", str(run_id), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    try:
        runs = json.loads(listing.stdout)["runs"]
    except (json.JSONDecodeError, KeyError):
        return f"unknown ({listing.stdout.strip() or listing.stderr.strip()})"
    return str(runs[0]["status"]) if runs else "unknown (no such run)"


def run_app(
    app_dir: Path,
    run_config: Mapping[str, Scalar],
    *,
    num_supernodes: int | None = None,
    cpus_per_client: int = 1,
    connection: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    echo: TextIO | None = None,
) -> RunOutcome:
    """``flwr run <app_dir> [connection] --stream`` with run-config overrides.

    ``num_supernodes`` sizes a simulation federation; leave it None for a
    deployed SuperLink. Each line the run prints is also written to ``echo``
    as it comes. Returns once the run ended.
    """
    command = ["flwr", "run", str(app_dir)]
    if connection:
        command.append(connection)
    command += ["--stream", "--run-config", format_overrides(run_config)]
    if num_supernodes is not None:
        command += [
            "--federation-config",
            f"num-supernodes={num_supernodes} "
            f"client-resources-num-cpus={cpus_per_client}",
        ]
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    ) as process:
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            process.kill()

        watchdog = threading.Timer(timeout or 0, expire)
        if timeout is not None:
            watchdog.start()
        lines = []
        try:
            for line in process.stdout:
                lines.append(line)
                if echo is not None:
                    echo.write(line)
                    echo.flush()
        finally:
            watchdog.cancel()
            returncode = process.wait()
    output = "".join(lines)
    if expired.is_set():
        raise subprocess.TimeoutExpired(command, timeout, output)
    match = re.search(r"Successfully started run (\d+)", output)
    if match is None:
        return RunOutcome(None, f"not started (exit code {returncode})", output)
    run_id = int(match.group(1))
    return RunOutcome(run_id, run_status(run_id, env), output)


def this_environment() -> dict[str, str]:
    """The environment for a ``flwr run`` that uses this Python environment:
    its ``bin`` first on PATH (``flwr`` starts ``flower-superlink`` by name)
    and Flower's per-run dependency installation off, so the managed local
    SuperLink runs the app here instead of installing its dependencies (torch
    with CUDA wheels: gigabytes) into a fresh environment for every run."""
    path = os.pathsep.join((str(Path(sys.executable).parent), os.environ["PATH"]))
    return {
        **os.environ,
        "PATH": path,
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    }


def installing_superexecs() -> list[str]:
    """Command lines of running SuperExecs that install each run's dependencies
    (started by a SuperLink without ``NO_RUNTIME_INSTALL``): a managed local
    SuperLink keeps running after ``flwr run``, with the setting it started
    with."""
    try:
        listing = subprocess.run(
            ["ps", "-ww", "-eo", "pid=,args="],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []  # no ps: nothing to warn about
    return [
        line.strip()
        for line in listing.splitlines()
        if "flower-superexec" in line
        and "--allow-runtime-dependency-installation" in line
    ]
