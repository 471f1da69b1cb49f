"""edge/systemd: `systemd-analyze verify` on copies of the units pointed at this
venv, what each unit must hold, and the node-config file the SuperNode unit
names. (Both units' ExecStart and Environment start the real federation of
test_edge_tls.py.)"""

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from federation import (
    EDGE,
    VENV_BIN,
    cli_flags,
    command_options,
    read_unit,
    unit_command,
    unit_environment,
)

from blossom_app.benchmarks.watch import WATCH
from blossom_app.common.node_config import NodeConfig

UNITS = sorted((EDGE / "systemd").glob("*.service"))
SUPERLINK = EDGE / "systemd" / "blossom-superlink.service"
SUPERNODE = EDGE / "systemd" / "blossom-supernode.service"
NODE_CONFIG = EDGE / "systemd" / "node-config.toml"
VENV = "/opt/blossom/venv"


def verify(unit_text: str, name: str, directory: Path) -> str:
    """Everything ``systemd-analyze verify`` says about a copy of a unit whose
    venv is this test's (verify needs ExecStart's binary to exist)."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze not found: apt-get install systemd")
    copy = directory / name
    copy.write_text(unit_text.replace(VENV, str(VENV_BIN.parent)))
    checked = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        cwd=directory,
        check=False,
    )
    return f"exit {checked.returncode}: {checked.stdout}{checked.stderr}".strip()


def test_edge_has_both_units():
    assert {SUPERLINK, SUPERNODE} <= set(UNITS)


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_unit_passes_systemd_analyze_verify_without_a_word(unit, tmp_path):
    # verify exits 0 on unknown keys and bad values: only silence is a pass
    assert verify(unit.read_text(), unit.name, tmp_path) == "exit 0:"


def test_verify_speaks_up_about_a_broken_unit(tmp_path):
    broken = SUPERLINK.read_text().replace("RestartSec=", "RestartSecs=")
    assert "Unknown key 'RestartSecs'" in verify(broken, SUPERLINK.name, tmp_path)


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_unit_runs_the_venv_with_runtime_installs_off_and_restarts(unit):
    sections = read_unit(unit)
    service = sections["Service"]
    [command] = service["ExecStart"]
    # no quoting, expansion or specifiers: shell-like splitting is systemd's
    assert not set(command) & set("'\"$%;"), command
    argv = unit_command(sections, {})
    assert argv[0] in (f"{VENV}/bin/flower-superlink", f"{VENV}/bin/flower-supernode")
    env = unit_environment(sections, {})
    # they start flower-superexec by name: the venv's bin first on PATH
    assert env["PATH"].split(":")[0] == f"{VENV}/bin"
    if argv[0].endswith("flower-superlink"):  # the only reader of the variable
        assert env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] == "1"
    else:  # a SuperNode installs nothing unless told to
        assert "--allow-runtime-dependency-installation" not in argv
    assert env["FLWR_TELEMETRY_ENABLED"] == "0"
    assert env["HOME"] == "/var/lib/blossom"
    assert service["Restart"] == ["on-failure"]
    assert service["StateDirectory"] == ["blossom"]
    assert service["User"] == ["blossom"]
    assert sections["Unit"]["After"] == ["network-online.target"]
    assert sections["Install"]["WantedBy"] == ["multi-user.target"]
    flags = [word for word in argv if word.startswith("--")]
    assert set(flags) <= cli_flags(Path(argv[0]).name), flags


def test_superlink_unit_serves_tls_with_node_auth_and_keeps_registrations():
    given = command_options(unit_command(read_unit(SUPERLINK), {}))
    assert "--insecure" not in given
    assert given["--host"] == "0.0.0.0"  # the default, 127.0.0.1, refuses devices
    assert given["--ssl-ca-certfile"] == "/etc/blossom/ca.crt"
    assert given["--ssl-certfile"] == "/etc/blossom/server.pem"
    assert given["--ssl-keyfile"] == "/etc/blossom/server.key"
    assert given["--enable-supernode-auth"] is None
    assert given["--disable-runtime-dependency-installation"] is None
    # registered SuperNodes survive a restart only in a database
    assert given["--database"].startswith("/var/lib/blossom/")
    env = unit_environment(read_unit(SUPERLINK), {})
    assert env["BLOSSOM_RESULTS_DIR"].startswith("/var/lib/blossom/")


def test_supernode_unit_connects_with_tls_its_key_and_its_node_config():
    given = command_options(unit_command(read_unit(SUPERNODE), {}))
    assert "--insecure" not in given
    assert given["--root-certificates"] == "/etc/blossom/ca.crt"
    assert given["--auth-supernode-private-key"] == "/etc/blossom/supernode.key"
    assert given["--node-config"] == "/etc/blossom/node-config.toml"
    assert given["--superlink"].endswith(":9093")


def test_node_config_file_is_read_by_flower_and_accepted_by_the_app():
    from flwr.common.config import parse_config_args

    values = tomllib.loads(NODE_CONFIG.read_text())
    assert parse_config_args([str(NODE_CONFIG)]) == values
    node = NodeConfig.from_node_config(values, WATCH)
    assert node.modalities == ("acc",)
    # what the node writes lies in the unit's StateDirectory
    for path in (node.state_dir, node.export_dir, Path(node.data_path)):
        assert path.is_relative_to("/var/lib/blossom"), path
