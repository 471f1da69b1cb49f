"""Helpers for the edge tests: read the systemd units in ``edge/systemd`` (so a
test can start exactly the command a unit starts) and start, watch and stop
SuperLink/SuperNode processes: a loopback federation, and a secured one (TLS,
registered SuperNodes, a SuperLink database) that can restart its SuperLink."""

import contextlib
import functools
import json
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
from conftest import free_port, pids_mentioning, stop_processes_mentioning

from blossom_app.tools.flwr_runner import RunOutcome, run_app

EDGE = Path(__file__).parents[1] / "edge"
VENV_BIN = Path(sys.executable).parent
VENV = VENV_BIN.parent
MAKE_CERTS = EDGE / "certs" / "make-certs.sh"
REGISTER = EDGE / "certs" / "register-supernodes.sh"
#: The secured federation's registered SuperNodes: name -> (modality, partition).
SECURED_NODES = {"node-acc": ("acc", 0), "node-gyro": ("gyro", 1)}


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


def connection_block(printed: str) -> str:
    """The ``[superlink.<name>]`` block make-certs.sh prints (step 2)."""
    match = re.search(r"^\s*(\[superlink\.\w+\]\n(?:\s*\S+ = .*\n)+)", printed, re.M)
    assert match, printed
    return "\n".join(line.strip() for line in match.group(1).splitlines()) + "\n"


def register_commands(printed: str) -> dict[str, list[str]]:
    """SuperNode name -> the ``flwr supernode register`` command printed for it."""
    commands = [
        shlex.split(line)
        for line in printed.splitlines()
        if line.strip().startswith("flwr supernode register")
    ]
    return {command[command.index("--name") + 1]: command for command in commands}


def node_ids(text: str) -> list[str]:
    return re.findall(r"(?:SuperNode |node id )(\d+)", text)


def run_tool(*command: object, env: Mapping[str, str]) -> subprocess.CompletedProcess:
    """Run ``command`` to its end, capturing its output as text."""
    return subprocess.run(
        [str(word) for word in command],
        capture_output=True,
        text=True,
        env=dict(env),
        check=False,
    )


class SecuredFederation:
    """A secured federation on loopback, built only from what edge/ ships.

    The credentials come from edge/certs/make-certs.sh; the SuperLink (TLS,
    ``--enable-supernode-auth``, its ``--database``) and the SuperNodes
    ``node-acc`` (partition 0) and ``node-gyro`` (partition 1) run the exact
    ExecStart and Environment of the units in edge/systemd, paths pointed at
    ``tmp_path`` (the SuperLink's /var/lib/blossom is ``server``, so results go
    to ``server/results``; each SuperNode's ``state-dir`` is
    ``state/<name>``); the keys are registered with the command make-certs.sh
    prints and with register-supernodes.sh. With ``stranger``, a SuperNode
    whose key nobody registered is started too. Its connection is ``blossom``
    in ``$FLWR_HOME/config.toml``. With ``extra`` (``{name: modalities}``),
    more SuperNodes start the same way, each with its own key, on partitions 2
    on; ``late`` ones likewise have keys registered but start only when
    ``start_late(name)`` is called (nodes joining a running fleet). A context
    manager: leaving it stops everything it started.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        tmp_path: Path,
        *,
        stranger: bool = True,
        extra: Mapping[str, str] | None = None,
        late: Mapping[str, str] | None = None,
    ) -> None:
        self.env, self.tmp_path, self.with_stranger = dict(env), tmp_path, stranger
        added = {**(extra or {}), **(late or {})}
        self.late = set(late or {})
        # name -> (modalities, partition): the two of SECURED_NODES, then these
        self.layout = {
            **SECURED_NODES,
            **{name: (mods, 2 + i) for i, (name, mods) in enumerate(added.items())},
        }
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.credentials = tmp_path / "credentials"
        self.logs = tmp_path / "logs"
        self.server = tmp_path / "server"  # the SuperLink's /var/lib/blossom
        self.database = self.server / "superlink.db"
        self.processes: list[subprocess.Popen] = []  # everything, to stop
        self.tags = [self.address]  # what their command lines mention
        self.nodes: dict[str, subprocess.Popen] = {}  # the running SuperNodes
        self.registered: dict[str, list[str]] = {}  # name -> its node id
        self.stranger: subprocess.Popen | None = None
        self.superlink_logs: list[Path] = []

    def __enter__(self) -> "SecuredFederation":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def state_dir(self, name: str) -> Path:
        return self.tmp_path / "state" / name

    def _start(self) -> None:
        self.logs.mkdir()
        self.server.mkdir()
        added = [name for name in self.layout if name not in SECURED_NODES]
        names = [
            *SECURED_NODES,
            *added,
            *(["stranger"] if self.with_stranger else []),
        ]
        made = run_tool(
            MAKE_CERTS, "-o", self.credentials, "-p", self.port, "127.0.0.1", *names,
            env=self.env,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        home = Path(self.env["FLWR_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            '[superlink]\ndefault = "blossom"\n\n' + connection_block(made.stdout)
        )
        self._start_superlink()
        # register-supernodes.sh waits for the SuperLink to come up
        ca = self.credentials / "ca.crt"
        helper = [REGISTER, "-w", "60", self.address, ca]
        keys = [
            self.credentials / "supernodes" / f"{name}.pub" for name in SECURED_NODES
        ]
        first = run_tool(*helper, keys[1], env=self.env)
        assert first.returncode == 0, first.stdout + first.stderr
        wait_until_healthy(self.port, self.superlink, self.superlink_logs[-1], ca)
        # the command make-certs.sh printed
        printed = run_tool(*register_commands(made.stdout)["node-acc"], env=self.env)
        assert "registered successfully" in printed.stdout, printed.stdout
        self.registered = {
            "node-acc": node_ids(printed.stdout),
            "node-gyro": node_ids(first.stdout),
        }
        again = subprocess.Popen(  # runs while the SuperNodes start
            [*map(str, helper), *map(str, keys)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env,
        )  # fmt: skip
        for name, (_, partition) in SECURED_NODES.items():
            self._start_supernode(name, partition)
        if self.with_stranger:
            self.stranger = self._start_supernode("stranger", 1)
        for name in SECURED_NODES:
            # a SuperNode's id is the one its key was registered as
            log = wait_for_log(
                self.logs / f"{name}.log", "SuperNode ID", self.nodes[name]
            )
            assert re.findall(r"SuperNode ID: (\d+)", log) == self.registered[name]
        output, _ = again.communicate(timeout=60)
        assert again.returncode == 0, output
        assert output.count("already registered") == 2, output
        if added:
            keys = [self.credentials / "supernodes" / f"{name}.pub" for name in added]
            more = run_tool(*helper, *keys, env=self.env)
            assert more.returncode == 0, more.stdout + more.stderr
            for name in added:
                if name not in self.late:
                    self._start_supernode(name, self.layout[name][1])

    def start_late(self, name: str) -> None:
        """Start the late SuperNode ``name`` (its key is registered already)."""
        self._start_supernode(name, self.layout[name][1])

    def _start_superlink(self) -> None:
        """Start the SuperLink as its unit would; its log is ``superlink.log``,
        then ``superlink-2.log``… after each restart."""
        unit = read_unit(EDGE / "systemd" / "blossom-superlink.service")
        on_server = {
            "/opt/blossom/venv": str(VENV),
            "/etc/blossom/": f"{self.credentials}/",
            "/var/lib/blossom": str(self.server),
            "--host 0.0.0.0": "--host 127.0.0.1",
            "--port 9093": f"--port {self.port}",
        }
        count = len(self.superlink_logs) + 1
        log = self.logs / ("superlink.log" if count == 1 else f"superlink-{count}.log")
        self.superlink = start(
            unit_command(unit, on_server),
            {**self.env, **unit_environment(unit, on_server)},
            log,
        )
        self.processes.append(self.superlink)
        self.superlink_logs.append(log)

    def _start_supernode(self, name: str, partition: int) -> subprocess.Popen:
        """Start SuperNode ``name`` as its systemd unit would, with its own key,
        a node-config TOML file, its state and a free Runtime API port."""
        modality = self.layout.get(name, ("gyro", 1))[0].replace("+", ",")
        node_config = self.tmp_path / f"{name}.toml"
        node_config.write_text(
            f"partition-id = {partition}\nnum-partitions = {len(self.layout)}\n"
            f'modalities = "{modality}"\nnum-threads = 1\n'
            f'state-dir = "{self.state_dir(name)}"\n'
        )
        on_device = {
            "/etc/blossom/supernode.key": str(self.credentials / "supernodes" / name),
            "/etc/blossom/node-config.toml": str(node_config),
            "/etc/blossom/": f"{self.credentials}/",
            "/opt/blossom/venv": str(VENV),
            "/var/lib/blossom": str(self.tmp_path / "device" / name),
            "192.168.1.10:9093": self.address,
        }
        unit = read_unit(EDGE / "systemd" / "blossom-supernode.service")
        runtime_port = free_port()  # SuperNodes sharing a host need one each
        process = start(
            [*unit_command(unit, on_device), "--port", str(runtime_port)],
            {**self.env, **unit_environment(unit, on_device)},
            self.logs / f"{name}.log",
        )
        self.processes.append(process)
        self.tags.append(f"127.0.0.1:{runtime_port}")
        if name in self.layout:
            self.nodes[name] = process
        return process

    def restart_node(self, name: str) -> None:
        """Stop SuperNode ``name`` and start it again as its unit would."""
        stop([self.nodes[name]])
        self._start_supernode(name, self.layout[name][1])

    def serverapps(self) -> dict[int, str]:
        """Pid -> command line of the ServerApp processes this SuperLink's
        SuperExec started (``flwr-serverapp --runtime-api-address <its
        address> --token … --parent-pid <the SuperExec's>``)."""
        return pids_mentioning("flwr-serverapp", self.address)

    def restart_superlink(self) -> None:
        """Stop the SuperLink and what it started (SIGTERM, as ``systemctl
        restart`` does to the unit's processes; SIGKILL after 15 s, where
        systemd waits 90 s), start it again with the unit's command (same
        ``--database``, credentials and port) and wait until it is healthy.
        The SuperNodes keep running and reconnect by themselves."""
        stop([self.superlink])
        children = {
            pid
            for program in ("flower-superexec", "flwr-serverapp")
            for pid in pids_mentioning(program, self.address)
        }
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        wait_for(
            lambda: not children & set(pids_mentioning(self.address)),
            "the SuperLink's SuperExec and ServerApp to end",
            timeout=30,
        )
        self._start_superlink()
        ca = self.credentials / "ca.crt"
        wait_until_healthy(self.port, self.superlink, self.superlink_logs[-1], ca)

    def node_statuses(self) -> dict[str, str]:
        """Node id -> status as ``flwr supernode list`` shows them (JSON)."""
        listed = run_tool(
            "flwr", "supernode", "list", "blossom", "--format", "json", env=self.env
        )
        try:
            nodes = json.loads(listed.stdout)["nodes"]
        except (json.JSONDecodeError, KeyError):
            return {}
        return {str(node["node-id"]): str(node["status"]) for node in nodes}

    def close(self) -> None:
        """Stop every process it started, and whatever mentions its ports."""
        stop(self.processes)
        for tag in self.tags:
            stop_processes_mentioning(tag)


def _saved_state(state_dir: Path, experiment: str = "*") -> Path | None:
    """The node's newest private-state file (``client_state.py``'s layout:
    ``partition-<id>-<set>/<experiment>/run-<k>/round-<r>.npz``), of any
    experiment or of ``experiment`` (``layout.experiment_name``)."""
    files = state_dir.glob(f"partition-*/{experiment}/run-*/round-*.npz")
    rounds = {int(f.stem.removeprefix("round-")): f for f in files}
    return rounds[max(rounds)] if rounds else None


def trained_rounds(state_dir: Path, experiment: str = "*") -> int:
    """Local rounds in the node's saved private state (0 before it exists),
    of any experiment or of ``experiment``."""
    saved = _saved_state(state_dir, experiment)
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


def wait_for(condition, what: str, timeout: float = 240, interval: float = 0.2) -> None:
    """Poll ``condition()`` every ``interval`` seconds until true, or fail
    naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(interval)


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
