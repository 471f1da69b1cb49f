"""What a user following edge/README.md runs into, checked for real: the edge
runner's answer to a model path that does not exist, the SuperLink command
make-certs.sh prints, step 5's make_windows.py on each device's own data, and
step 5's commands against the node configs the guide gives the devices."""

import re
import runpy
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from runner_helpers import RUNNER, load_runner

EDGE = Path(__file__).resolve().parents[1] / "edge"
README = (EDGE / "README.md").read_text()
MAKE_CERTS = EDGE / "certs" / "make-certs.sh"
VENV_BIN = Path(sys.executable).parent
NEEDED = {"--host", "--database", "--disable-runtime-dependency-installation"}


def run(*command: object, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(word) for word in command],
        capture_output=True,
        text=True,
        check=False,
        **options,
    )


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def bash_commands() -> list[list[str]]:
    """Each command of the guide's bash blocks as words (continuations joined)."""
    return [
        words
        for block in blocks("bash")
        for line in re.sub(r"\\\n\s*", " ", block).splitlines()
        if (words := shlex.split(line, comments=True))
    ]


def help_flags(program: str) -> set[str]:
    shown = run(
        VENV_BIN / program,
        "--help",
        env={"PATH": str(VENV_BIN), "COLUMNS": "200", "FLWR_TELEMETRY_ENABLED": "0"},
    )
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", shown.stdout))
    assert flags, shown.stderr
    return flags


# run_model.py, given a path that does not exist


@pytest.mark.timeout(60)
def test_runner_says_a_missing_model_path_does_not_exist(tmp_path):
    models = tmp_path / "models"
    (models / "partition-0-acc").mkdir(parents=True)
    (models / "partition-0-acc" / "model.json").write_text("{}")
    missing = models / "partition-0-acc+gyro"

    refused = run(sys.executable, RUNNER, missing, "--input", "acc=acc.npy")

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"error: {missing} does not exist." in refused.stderr
    assert "No model card" not in refused.stderr  # no fallback to the parent
    assert f"Model folders in {models}: partition-0-acc." in refused.stderr
    assert "partition-<partition-id>-<modalities>" in refused.stderr
    assert refused.stdout == ""


@pytest.mark.timeout(60)
def test_runner_names_the_onnx_files_of_the_folder_for_a_missing_onnx_file(tmp_path):
    folder = tmp_path / "partition-1-acc+gyro"
    folder.mkdir()
    (folder / "model.json").write_text("{}")
    (folder / "model.onnx").write_bytes(b"")
    missing = folder / "model.int8.onnx"  # exported only with export-int8

    refused = run(sys.executable, RUNNER, missing, "--input", "acc=acc.npy")

    assert refused.returncode == 2
    assert f"error: {missing} does not exist." in refused.stderr
    assert f"{folder} holds model.onnx." in refused.stderr


# make-certs.sh's printed SuperLink command


def printed_superlink_command(printed: str) -> list[str]:
    """The ``flower-superlink …`` command in make-certs.sh's "Next" (step 1)."""
    joined = re.sub(r"\\\n\s*", " ", printed)
    [line] = [line for line in joined.splitlines() if "flower-superlink" in line]
    words = shlex.split(line)
    return words[words.index("flower-superlink") :]


@pytest.mark.timeout(60)
def test_make_certs_prints_a_superlink_command_flower_superlink_accepts(tmp_path):
    out = tmp_path / "generated"
    made = run("bash", MAKE_CERTS, "-o", out, "-p", "9443", "192.168.1.10", "pi5")
    assert made.returncode == 0, made.stderr

    command = printed_superlink_command(made.stdout.split("Next:")[1])
    flags = [word for word in command if word.startswith("--")]

    assert set(flags) >= NEEDED | {"--enable-supernode-auth", "--ssl-certfile"}
    unknown = set(flags) - help_flags("flower-superlink")
    assert not unknown, f"flower-superlink --help does not list {unknown}"
    value = {flag: command[command.index(flag) + 1] for flag in ("--host", "--port")}
    assert value == {"--host": "0.0.0.0", "--port": "9443"}  # -p PORT is used
    for flag in ("--ssl-ca-certfile", "--ssl-certfile", "--ssl-keyfile"):
        assert Path(command[command.index(flag) + 1]).is_file(), flag


@pytest.mark.timeout(60)
def test_guide_names_make_certs_port_option_and_its_superlink_flags():
    usage = run("bash", MAKE_CERTS, "-h")
    assert "-p PORT" in usage.stdout
    assert "`-p PORT`" in README
    [superlink] = [words for words in bash_commands() if "flower-superlink" in words]
    assert set(superlink) >= NEEDED


# step 5: make_windows.py on each device's own data


@pytest.fixture(scope="module")
def device_data(tmp_path_factory) -> Path:
    """The devices' data, written as step 1 of the guide writes it."""
    directory = tmp_path_factory.mktemp("server")
    [heredoc] = [
        body
        for block in blocks("bash")
        for body in re.findall(r"<<'EOF'\n(.*?)\nEOF", block, re.S)
        if "save_to_disk" in body
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)  # the guide runs it in /tmp
        exec(compile(heredoc, "device-data heredoc", "exec"), {"__name__": "__main__"})
    return directory / "device-data"


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("device", "modalities"), [("pi5", ("acc",)), ("orin", ("acc", "gyro"))]
)
def test_make_windows_cuts_windows_of_every_class_from_the_device_data(
    device, modalities, device_data, tmp_path, monkeypatch, capsys
):
    [snippet] = [block for block in blocks("python") if "PER_CLASS" in block]
    script = tmp_path / "make_windows.py"
    script.write_text(snippet)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [script.name, str(device_data / device)])
    runpy.run_path(str(script), run_name="__main__")  # python make_windows.py PATH

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "window\ttrue class"
    classes = [line.split("\t")[1] for line in lines[1:]]
    assert len(set(classes)) >= 5, classes  # watch has 7 classes; each device all
    written = {path.name for path in tmp_path.iterdir()} - {script.name}
    assert written == {f"{name}.{ext}" for name in modalities for ext in ("npy", "csv")}
    runner = load_runner()
    for name in modalities:
        windows = np.load(tmp_path / f"{name}.npy")
        assert windows.shape == (len(classes), 128, 3)
        assert windows.dtype == np.float32
        # the CSV holds the same windows, in the layout the runner reads
        np.testing.assert_allclose(
            runner.read_windows(tmp_path / f"{name}.csv", rank=2), windows, rtol=1e-6
        )


# step 5's commands against the devices' node configs


def guide_node_configs() -> list[dict]:
    return [tomllib.loads(b) for b in blocks("toml") if "modalities" in b]


@pytest.mark.timeout(30)
def test_step_5_runs_each_devices_own_model_folder_with_its_inputs():
    configs = [tomllib.loads(b) for b in blocks("toml") if "modalities" in b]
    assert len(configs) == 2  # the Pi's and the Jetson's
    expected = {}  # the folder each device exports to -> the inputs of its model
    for config in configs:
        modalities = config["modalities"].split(",")
        folder = f"partition-{config['partition-id']}-{'+'.join(modalities)}"
        expected[str(Path(config["export-dir"]) / folder)] = set(modalities)
    assert {Path(folder).name for folder in expected} == {
        "partition-0-acc",
        "partition-1-acc+gyro",
    }
    shown = {}
    for words in bash_commands():
        runner = [i for i, word in enumerate(words) if word.endswith("run_model.py")]
        if runner:
            inputs = [words[i + 1] for i, word in enumerate(words) if word == "--input"]
            shown[words[runner[0] + 1]] = {text.split("=")[0] for text in inputs}
    assert shown == expected
    # no other partition folder is named anywhere in the guide
    named = set(re.findall(r"partition-\d+-[a-z]+(?:\+[a-z]+)*", README))
    assert named == {Path(folder).name for folder in expected}
