"""Run this Flower app with ``flwr run`` and report how the run really ended.

``flwr run --stream`` exits 0 even when the run failed, so the outcome is read
back with ``flwr ls --run-id <id> --format json``. Used by ``blossom sweep``
and by the end-to-end tests.
"""

import json
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import Scalar, toml_value


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
) -> RunOutcome:
    """``flwr run <app_dir> [connection] --stream`` with run-config overrides.

    ``num_supernodes`` sizes a simulation federation; leave it None for a
    deployed SuperLink. Returns once the run ended.
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
    process = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    output = process.stdout + process.stderr
    match = re.search(r"Successfully started run (\d+)", output)
    if match is None:
        return RunOutcome(None, f"not started (exit code {process.returncode})", output)
    run_id = int(match.group(1))
    return RunOutcome(run_id, run_status(run_id, env), output)
