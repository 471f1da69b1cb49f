"""A secured federation on loopback, built only from what edge/ ships: the
credentials from edge/certs/make-certs.sh, the SuperLink and SuperNodes started
with the exact ExecStart and Environment of the systemd units in edge/systemd
(paths pointed at this test's files), keys registered with the commands
make-certs.sh prints and with register-supernodes.sh, then a real `flwr run`
over TLS. A SuperNode whose key nobody registered is refused; one restarted
mid-run comes back with the same node id and continues its personalization."""

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port, stop_processes_mentioning
from federation import (
    EDGE,
    BackgroundRun,
    read_unit,
    start,
    stop,
    trained_rounds,
    unit_command,
    unit_environment,
    wait_for,
    wait_for_log,
    wait_until_healthy,
)

from blossom_app.reporting.csv_files import read_rows

APP = Path(__file__).parents[1]
VENV = Path(sys.executable).parents[1]
MAKE_CERTS = EDGE / "certs" / "make-certs.sh"
REGISTER = EDGE / "certs" / "register-supernodes.sh"
NODES = {"node-acc": "acc", "node-gyro": "gyro"}  # SuperNode name -> modality
NODES_PARTITION = {"node-acc": 0, "node-gyro": 1}


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


def run(*command: object, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(word) for word in command],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def start_supernode(name: str, partition: int, port: int, tmp_path: Path, env):
    """Start SuperNode ``name`` as its systemd unit would, with its own key, a
    node-config TOML file, its state and a free Runtime API port."""
    node_config = tmp_path / f"{name}.toml"
    node_config.write_text(
        f"partition-id = {partition}\nnum-partitions = 2\n"
        f'modalities = "{NODES.get(name, "gyro")}"\nnum-threads = 1\n'
        f'state-dir = "{tmp_path / "state" / name}"\n'
    )
    on_device = {
        "/etc/blossom/supernode.key": str(tmp_path / "credentials/supernodes" / name),
        "/etc/blossom/node-config.toml": str(node_config),
        "/etc/blossom/": f"{tmp_path / 'credentials'}/",
        "/opt/blossom/venv": str(VENV),
        "/var/lib/blossom": str(tmp_path / "device" / name),
        "192.168.1.10:9093": f"127.0.0.1:{port}",
    }
    unit = read_unit(EDGE / "systemd" / "blossom-supernode.service")
    runtime_port = free_port()  # SuperNodes sharing a host need one each
    process = start(
        [*unit_command(unit, on_device), "--port", str(runtime_port)],
        {**env, **unit_environment(unit, on_device)},
        tmp_path / "logs" / f"{name}.log",
    )
    return process, f"127.0.0.1:{runtime_port}"


@pytest.fixture
def secured_federation(flwr_env, tmp_path):
    """A TLS + authenticated SuperLink with SuperNodes ``node-acc`` (partition
    0) and ``node-gyro`` (partition 1) connected, and the ``stranger`` (an
    unregistered key) started. Yields the environment, the SuperLink's state
    directory, the stranger's process and ``restart(name)``, which stops a
    SuperNode and starts it again as its unit would."""
    port = free_port()
    credentials = tmp_path / "credentials"
    (tmp_path / "logs").mkdir()
    made = run(
        MAKE_CERTS, "-o", credentials, "-p", port, "127.0.0.1", *NODES, "stranger",
        env=flwr_env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    home = Path(flwr_env["FLWR_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "blossom"\n\n' + connection_block(made.stdout)
    )

    server = tmp_path / "server"  # the SuperLink's /var/lib/blossom
    server.mkdir()
    unit = read_unit(EDGE / "systemd" / "blossom-superlink.service")
    on_server = {
        "/opt/blossom/venv": str(VENV),
        "/etc/blossom/": f"{credentials}/",
        "/var/lib/blossom": str(server),
        "--host 0.0.0.0": "--host 127.0.0.1",
        "--port 9093": f"--port {port}",
    }
    superlink_log = tmp_path / "logs" / "superlink.log"
    superlink = start(
        unit_command(unit, on_server),
        {**flwr_env, **unit_environment(unit, on_server)},
        superlink_log,
    )
    processes, tags = [superlink], [f"127.0.0.1:{port}"]
    try:
        # register-supernodes.sh waits for the SuperLink to come up
        helper = [REGISTER, "-w", "60", f"127.0.0.1:{port}", credentials / "ca.crt"]
        keys = [credentials / "supernodes" / f"{name}.pub" for name in NODES]
        first = run(*helper, keys[1], env=flwr_env)
        assert first.returncode == 0, first.stdout + first.stderr
        wait_until_healthy(port, superlink, superlink_log, credentials / "ca.crt")
        # the command make-certs.sh printed
        printed = run(*register_commands(made.stdout)["node-acc"], env=flwr_env)
        assert "registered successfully" in printed.stdout, printed.stdout
        registered = {
            "node-acc": node_ids(printed.stdout),
            "node-gyro": node_ids(first.stdout),
        }
        again = subprocess.Popen(  # runs while the SuperNodes start
            [*map(str, helper), *map(str, keys)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=flwr_env,
        )  # fmt: skip

        for name, partition in {**NODES_PARTITION, "stranger": 1}.items():
            process, tag = start_supernode(name, partition, port, tmp_path, flwr_env)
            processes.append(process)
            tags.append(tag)
        for name, process in zip(NODES, processes[1:], strict=False):
            # a SuperNode's id is the one its key was registered as
            log = wait_for_log(
                tmp_path / "logs" / f"{name}.log", "SuperNode ID", process
            )
            assert re.findall(r"SuperNode ID: (\d+)", log) == registered[name]
        output, _ = again.communicate(timeout=60)
        assert again.returncode == 0, output
        assert output.count("already registered") == 2, output
        running = dict(zip(NODES, processes[1:], strict=False))

        def restart(name: str) -> None:
            stop([running[name]])
            process, tag = start_supernode(
                name, NODES_PARTITION[name], port, tmp_path, flwr_env
            )
            running[name] = process
            processes.append(process)
            tags.append(tag)

        yield flwr_env, server, processes[3], restart
    finally:
        stop(processes)
        for tag in tags:
            stop_processes_mentioning(tag)


def test_secured_federation_runs_and_refuses_an_unregistered_key(
    secured_federation, tmp_path
):
    env, server, stranger, restart = secured_federation
    logs = tmp_path / "logs"

    # The unregistered SuperNode is refused and ends (systemd would retry it).
    assert stranger.wait(timeout=60) != 0
    assert "Failed to activate SuperNode" in (logs / "stranger.log").read_text()
    superlink_log = (logs / "superlink.log").read_text()
    assert "No SuperNode found with the given public key" in superlink_log

    run = BackgroundRun(
        APP,
        {
            "num-server-rounds": 3,
            "local-epochs": 1,
            "evaluate-every": 3,
            "modality-mix": "acc=1,gyro=1",
            "batch-size": 64,
            "round-timeout": 60.0,
            "export-onnx": False,  # exporting is tested elsewhere
        },
        connection="blossom",
        env=env,
        timeout=600,
    )
    # node-acc restarts after round 1 (systemd's Restart=on-failure would)
    acc_state = tmp_path / "state" / "node-acc"
    wait_for(lambda: trained_rounds(acc_state) >= 1, "node-acc's round 1")
    time.sleep(2)  # its reply is on its way
    restart("node-acc")
    before = trained_rounds(acc_state)
    outcome = run.outcome()
    all_logs = "\n".join(p.read_text()[-2000:] for p in sorted(logs.iterdir()))
    assert outcome.ok, outcome.output[-3000:] + all_logs

    # Results where the unit's BLOSSOM_RESULTS_DIR says (/var/lib/blossom/results).
    [result] = (server / "results").glob("watch/iid/acc1_gyro1/*/*")
    clients = read_rows(result / "run_0" / "client_metrics.csv")
    assert {row["modalities"] for row in clients} == {"acc", "gyro"}
    assert (result / "aggregated_metrics.csv").is_file()
    # Each SuperNode read its node config from the TOML file the unit names.
    for name in NODES:
        assert list((tmp_path / "state" / name).rglob("*.npz")), name
    # The restarted node-acc kept its node id (its key's) and trained on from
    # its saved private blocks: the count went on from where it stopped.
    acc = [r for r in clients if r["partition_id"] == "0" and r["train_loss"]]
    assert len({r["node_id"] for r in acc}) == 1
    after = [r for r in acc if int(r["round"]) > before]
    assert after and trained_rounds(acc_state) == before + len(after)
