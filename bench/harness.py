"""Shared helpers of the bench scripts: run one real simulation, sample memory,
read a run's CSVs, write JSON and replace a script's section of RESULTS.md.

``simulate`` runs the README's main command, ``blossom run <app>
--num-supernodes N --run-config "k=v ..."``, isolated: its own ``FLWR_HOME``,
SuperLink ports and results directory under a work directory, telemetry and
update checks off. The wall time covers the whole command (SuperLink and Ray
start-up included). ``blossom run`` leaves the managed SuperLink running, so
every process whose command line names the work directory's ``FLWR_HOME`` is
stopped afterwards.

Memory (Linux ``/proc``, no psutil): every ``SAMPLE_SECONDS`` while the run is
going, each process descended from the command is classified by its command
line: ``client`` (``ray::ClientAppActor``, the Ray worker serving simulated
ClientApps) or ``server`` (``flwr-simulation``, which hosts the ServerApp). Per
process: RSS (``VmRSS`` of ``/proc/<pid>/status``), USS (``Private_Clean`` +
``Private_Dirty``) and PSS of ``/proc/<pid>/smaps_rollup``. The peak of each
figure over processes and samples is kept per kind. Reading ``smaps_rollup`` of
a large process takes ~20 ms of kernel time, so sampling costs a few percent of
one core; ``SimRun.sampler_cpu_seconds`` says how much.
"""

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from blossom_app.reporting.csv_files import read_rows
from blossom_app.reporting.layout import find_experiments, run_dirs
from blossom_app.tools.flwr_runner import format_overrides

BENCH = Path(__file__).resolve().parent
APP = BENCH.parent
RESULTS_MD = BENCH / "RESULTS.md"
BLOSSOM = Path(sys.executable).parent / "blossom"
SAMPLE_SECONDS = 0.5
OUTPUT_TAIL = 60  # lines of a failed run's output to show
LINE = 88  # RESULTS.md prose width
MB = 1e6
GB = 1e9


@dataclass
class Peak:
    """Peak memory of one kind of process, in bytes (``processes``: how many)."""

    rss: int = 0
    uss: int = 0
    pss: int = 0
    processes: int = 0


@dataclass
class SimRun:
    """One finished simulation: its command, wall seconds and results."""

    command: list[str]
    wall_seconds: float
    experiment: Path  # <results>/<dataset>/<partitioner>/<mix>/<policy>/<timestamp>
    memory: dict[str, Peak] | None = None
    sampler_cpu_seconds: float = 0.0  # this process's CPU time spent sampling

    def rows(self, name: str, run: int = 0) -> list[dict[str, str]]:
        """Rows of ``run_<run>/<name>`` (e.g. ``timing.csv``), as strings."""
        return read_rows(run_dirs(self.experiment)[run] / name)

    def to_json(self) -> dict:
        memory = None
        if self.memory is not None:
            memory = {kind: asdict(peak) for kind, peak in self.memory.items()}
        return {
            "command": shlex.join(self.command),
            "wall_seconds": self.wall_seconds,
            "experiment": str(self.experiment),
            "memory": memory,
            "sampler_cpu_seconds": self.sampler_cpu_seconds,
        }


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 now."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (this process excluded)."""
    listing = subprocess.run(
        ["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True
    ).stdout
    pids = []
    for line in listing.splitlines():
        pid, _, args = line.strip().partition(" ")
        if text in args and int(pid) != os.getpid():
            pids.append(int(pid))
    return pids


def stop_processes_mentioning(text: str, grace: float = 10.0) -> None:
    """SIGTERM every process whose command line contains ``text``; SIGKILL those
    still there after ``grace`` seconds."""
    for pid in processes_mentioning(text):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while (alive := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _descendants(root: int) -> list[int]:
    """Pids of ``root``'s descendants, from the parent pid in /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found += children.get(pid, [])
        todo += children.get(pid, [])
    return found


#: A deployment's processes, by the program they run: their kind.
DEPLOYED = {
    "flower-superlink": "superlink",
    "flwr-serverapp": "serverapp",
    "flower-supernode": "supernode",
    "flwr-clientapp": "clientapp",
}


def _kind(pid: int) -> str | None:
    """``client`` or ``server`` (a simulation's ClientApp actors and its
    ServerApp), a kind of ``DEPLOYED``, or None, from the command line."""
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    if args[0].startswith(b"ray::ClientAppActor"):
        return "client"
    names = {Path(arg.decode(errors="replace")).name for arg in args[:2]}
    if "flwr-simulation" in names:
        return "server"
    return next((DEPLOYED[name] for name in names if name in DEPLOYED), None)


def _kilobytes(path: str) -> dict[str, int]:
    """The ``<name>: <n> kB`` lines of a /proc file, in bytes."""
    values = {}
    for line in Path(path).read_text().splitlines():
        name, _, value = line.partition(":")
        if value.endswith(" kB"):
            values[name] = int(value.split()[0]) * 1024
    return values


def sample_tree(root: int, peaks: dict[str, Peak], seen: dict[str, set]) -> None:
    """Update ``peaks`` with one sample of ``root``'s descendants."""
    for pid in _descendants(root):
        try:
            kind = _kind(pid)
            if kind is None:
                continue
            rss = _kilobytes(f"/proc/{pid}/status")["VmRSS"]
            rollup = _kilobytes(f"/proc/{pid}/smaps_rollup")  # one read: it is slow
        except (OSError, KeyError, ValueError, IndexError):
            continue  # the process ended while being read
        uss = rollup["Private_Clean"] + rollup["Private_Dirty"]
        peak = peaks.setdefault(kind, Peak())
        peak.rss = max(peak.rss, rss)
        peak.uss = max(peak.uss, uss)
        peak.pss = max(peak.pss, rollup["Pss"])
        seen.setdefault(kind, set()).add(pid)
        peak.processes = len(seen[kind])


def isolated_env(workdir: Path) -> tuple[dict[str, str], Path]:
    """The environment of a Flower run of its own under ``workdir``: its
    ``FLWR_HOME`` (returned too: stop what names it afterwards), SuperLink
    ports and results directory, telemetry and update checks off."""
    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "flwr-home"
    http_port, control_port = free_ports(2)
    env = {
        **os.environ,  # BLOSSOM_CACHE_DIR, when set, is inherited
        "FLWR_HOME": str(home),
        "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(http_port),
        "FLWR_LOCAL_CONTROL_API_PORT": str(control_port),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "BLOSSOM_RESULTS_DIR": str(workdir / "results"),
    }
    return env, home


def simulate(
    run_config: Mapping[str, object],
    num_supernodes: int,
    workdir: Path,
    sample_memory: bool = False,
) -> SimRun:
    """Run ``blossom run`` once (a local simulation) in ``workdir``; raise
    RuntimeError with the end of its output if it fails."""
    env, home = isolated_env(workdir)
    command = [
        str(BLOSSOM),
        "run",
        str(APP),
        "--num-supernodes",
        str(num_supernodes),
    ]
    if run_config:
        command += ["--run-config", format_overrides(run_config)]
    log = workdir / "blossom-run.log"
    peaks: dict[str, Peak] = {}
    seen: dict[str, set] = {}
    start, cpu = time.perf_counter(), time.process_time()
    try:
        with log.open("w") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env
            )
            returncode = None
            while returncode is None:
                if sample_memory:
                    sample_tree(process.pid, peaks, seen)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    returncode = process.wait(timeout=SAMPLE_SECONDS)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
    finally:
        stop_processes_mentioning(str(home))
    if returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-OUTPUT_TAIL:])
        raise RuntimeError(
            f"{shlex.join(command)} exited {returncode}; end of {log}:\n{tail}"
        )
    complete, incomplete = find_experiments([workdir / "results"])
    if len(complete) != 1 or incomplete:
        raise RuntimeError(f"expected one finished experiment in {workdir}/results")
    memory = peaks if sample_memory else None
    return SimRun(command, wall, complete[0], memory, cpu)


def workdir(name: str) -> Path:
    """A fresh directory for ``name``'s runs (kept: the results stay readable)."""
    return Path(tempfile.mkdtemp(prefix=f"blossom-bench-{name}-"))


def parser(name: str, doc: str) -> argparse.ArgumentParser:
    """Arguments every bench script takes: ``--quick`` and ``--out``."""
    result = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    result.add_argument(
        "--quick", action="store_true", help="a short variant (about a minute)"
    )
    result.add_argument(
        "--out",
        type=Path,
        default=BENCH / "results" / f"{name}.json",
        help=f"JSON file to write (default: bench/results/{name}.json)",
    )
    return result


def command_line() -> str:
    """The command this script was run with, as typed (plus the cache setting)."""
    prefix = ""
    if "BLOSSOM_CACHE_DIR" in os.environ:
        prefix = f"BLOSSOM_CACHE_DIR={shlex.quote(os.environ['BLOSSOM_CACHE_DIR'])} "
    return prefix + shlex.join(["python", *sys.argv])


def machine() -> str:
    """One line on where it ran (the load shows other work sharing the CPUs)."""
    import torch  # its local version says which build (+cu130: CUDA)

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()}-core {platform.machine()}, CPU only, torch "
        f"{torch.__version__}, load average at start {load}"
    )


def write_json(path: Path, data: Mapping[str, object]) -> Path:
    """Write ``data`` as indented JSON (Paths as strings); return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def section(intro: str, table: str, command: str, quick: bool, host: str) -> str:
    """A section body: what was measured, how, where, then the table."""
    variant = " (`--quick`: a short variant, not the figures to quote)" if quick else ""
    today = datetime.date.today().isoformat()
    measured = f"Measured {today}{variant} on {host}, with `{command}`."
    paragraphs = [
        textwrap.fill(text, LINE, break_on_hyphens=False) for text in (intro, measured)
    ]
    return "\n\n".join([*paragraphs, table]) + "\n"


def replace_section(title: str, markdown: str, path: Path = RESULTS_MD) -> None:
    """Replace the ``## <title>`` section of RESULTS.md (up to the next ``## ``
    heading) with ``markdown``, or append it; other sections stay as they are."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    heading = f"## {title}"
    new = [heading, "", *markdown.strip("\n").splitlines(), ""]
    if heading in lines:
        start = lines.index(heading)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
            len(lines),
        )
        lines[start:end] = new
    else:
        if lines and lines[-1].strip():
            lines.append("")
        lines += new
    while lines and not lines[-1].strip():
        lines.pop()
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def replace_between(path: Path, markers: tuple[str, str], body: str) -> None:
    """Put ``body`` between the two ``markers`` of the document at ``path``."""
    text = path.read_text(encoding="utf-8")
    start = text.index(markers[0]) + len(markers[0])
    end = text.index(markers[1])
    path.write_text(
        text[:start] + "\n" + body.strip() + "\n" + text[end:], encoding="utf-8"
    )


#: What a bench result depends on besides its run config: the app's code,
#: presets and data files, and its default config (``pyproject.toml``).
CODE = ("blossom_app", "pyproject.toml")
#: The file beside an experiment's summaries that says which code it ran.
STAMP = "code_version.json"


def code_version(root: Path = APP) -> dict[str, object]:
    """The code the checkout at ``root`` runs: ``commit``, ``dirty`` (whether
    its ``CODE`` files differ from the commit) and ``code``, a hash of those
    files as they are, committed or not. Results are comparable when their
    ``code`` is the same: a commit of results or docs leaves it alone."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout

    files = git("ls-files", "--cached", "--others", "--exclude-standard", *CODE)
    digest = hashlib.sha256()
    for name in sorted(files.split()):
        if (root / name).is_file():  # deleted in the work tree: not in it
            digest.update(name.encode() + b"\0" + (root / name).read_bytes())
    return {
        "commit": git("rev-parse", "HEAD").strip(),
        "dirty": bool(git("status", "--porcelain", "--", *CODE).strip()),
        "code": digest.hexdigest()[:16],
    }


def stamp(experiment: Path, version: Mapping[str, object]) -> None:
    """Write ``version`` (``code_version()``) beside ``experiment``'s summaries."""
    write_json(experiment / STAMP, version)


def read_stamp(experiment: Path) -> dict[str, object] | None:
    """The code version ``experiment`` ran (None: it finished before stamps)."""
    path = experiment / STAMP
    return json.loads(path.read_text()) if path.is_file() else None


def code_label(version: Mapping[str, object] | None, now: Mapping) -> str:
    """How a row's code compares with ``now``'s: ``current``, ``stale
    (<commit>)`` or ``unstamped`` (finished before results were stamped)."""
    if version is None:
        return "unstamped"
    if version["code"] == now["code"]:
        return "current"
    return f"stale ({str(version['commit'])[:7]}{'+dirty' if version['dirty'] else ''})"


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def report(
    args: argparse.Namespace,
    title: str,
    intro: str,
    table: str,
    host: str,
    data: Mapping[str, object],
) -> Path:
    """Replace the script's ``title`` section of RESULTS.md and write its JSON
    (``data`` with the command, the variant and the machine); the JSON's path."""
    command = command_line()
    replace_section(title, section(intro, table, command, args.quick, host))
    record = {"command": command, "quick": args.quick, "machine": host, **data}
    return write_json(args.out, record)
