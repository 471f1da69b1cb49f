"""edge/README.md against reality: it describes every file in edge/, every flag
its Flower commands use exists in the installed flwr, every node config it (or
a unit, or the compose file) shows passes the app's validation, its device-data
snippet runs, and its Jetson edit of node-config.toml gives the config it
shows."""

import fnmatch
import re
import shlex
import subprocess
import sys
import tomllib

import pytest
import torch
import yaml
from federation import EDGE, cli_flags, command_options

from blossom_app.benchmarks.watch import WATCH
from blossom_app.common.node_config import NodeConfig
from blossom_app.data import load_task_dataset

README = EDGE / "README.md"
TEXT = README.read_text()
FLOWER = ("flower-superlink", "flower-supernode")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TEXT, re.S)


def shell_commands() -> list[list[str]]:
    """Each command line of the README's bash blocks as words (continuations
    joined, heredoc bodies left out)."""
    commands = []
    for block in blocks("bash"):
        in_heredoc = False
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            if in_heredoc:
                in_heredoc = line.strip() != "EOF"
                continue
            in_heredoc = "<<'EOF'" in line
            if words := shlex.split(line, comments=True):
                commands.append(words)
    return commands


def heredocs() -> list[str]:
    return [
        body
        for block in blocks("bash")
        for body in re.findall(r"<<'EOF'\n(.*?)\nEOF", block, re.S)
    ]


def flower_invocations() -> list[tuple[str, list[str]]]:
    """``(program, arguments)`` of every flower-superlink/-supernode the README
    starts, directly or as a container's arguments."""
    found = []
    for words in shell_commands():
        for program in FLOWER:
            if program in words:
                found.append((program, words[words.index(program) + 1 :]))
        if words[:2] == ["docker", "run"]:
            image = next(w for w in words if re.fullmatch(r"blossom-supernode-\w+", w))
            found.append(("flower-supernode", words[words.index(image) + 1 :]))
    return found


def test_readme_describes_every_file_in_edge():
    named = set(re.findall(r"`([^`\s]+)`", TEXT))
    files = [
        path.relative_to(EDGE).as_posix()
        for path in EDGE.rglob("*")
        if path.is_file()
        and path != README
        and not {"generated", "__pycache__"} & set(path.parts)
    ]
    assert files
    undescribed = [
        file
        for file in files
        if not any(fnmatch.fnmatch(file, pattern) for pattern in named)
    ]
    assert not undescribed, f"edge/README.md does not describe {undescribed}"


def test_readme_starts_the_superlink_and_supernodes_with_real_flags():
    invocations = flower_invocations()
    assert {program for program, _ in invocations} == set(FLOWER)
    for program, arguments in invocations:
        given = command_options(arguments)
        assert set(given) <= cli_flags(program), (program, arguments)
        assert "--insecure" not in given
        if program == "flower-superlink":
            assert {"--enable-supernode-auth", "--ssl-certfile"} <= set(given)
            assert "--disable-runtime-dependency-installation" in given
        else:
            assert {"--root-certificates", "--auth-supernode-private-key"} <= set(given)


def test_readme_flwr_commands_use_real_flags():
    commands = [words for words in shell_commands() if words[0] == "flwr"]
    assert {tuple(words[:2]) for words in commands} >= {
        ("flwr", "run"),
        ("flwr", "supernode"),
    }
    for words in commands:
        depth = 3 if words[1] == "supernode" else 2
        flags = {word.split("=")[0] for word in words if word.startswith("--")}
        assert flags <= cli_flags(*words[:depth]), words


def test_readme_builds_the_images_that_exist():
    builds = [words for words in shell_commands() if "build" in words[:3]]
    assert len(builds) >= 3
    for words in builds:
        dockerfile = words[words.index("-f") + 1]
        assert (EDGE.parent / dockerfile).is_file(), dockerfile
        assert words[-1] == "."  # from the repository root


def node_configs() -> dict[str, dict]:
    """Every node config edge/ shows: README (inline and TOML), the shipped
    node-config.toml, the compose file's SuperNodes."""
    from flwr.common.config import parse_config_args

    configs = {}
    for program, arguments in flower_invocations():
        text = command_options(arguments).get("--node-config")
        if program == "flower-supernode" and not text.endswith(".toml"):
            configs[f"README {text[:30]}"] = parse_config_args([text])
    for number, block in enumerate(blocks("toml")):
        if "modalities" in block:
            configs[f"README toml block {number}"] = tomllib.loads(block)
    shipped = EDGE / "systemd" / "node-config.toml"
    configs["node-config.toml"] = parse_config_args([str(shipped)])
    compose = yaml.safe_load((EDGE / "docker" / "compose.yml").read_text())
    for name, service in compose["services"].items():
        text = command_options(service.get("command", [])).get("--node-config")
        if text:
            configs[f"compose {name}"] = parse_config_args([text])
    return configs


def test_every_node_config_passes_the_apps_validation(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # a Jetson's GPU
    configs = node_configs()
    assert len(configs) >= 6, sorted(configs)
    for where, values in configs.items():
        node = NodeConfig.from_node_config(values, WATCH)
        assert node.modalities, where
        assert node.state_dir is not None and node.export_dir is not None, where


def test_readme_pi_config_is_the_shipped_file_and_its_jetson_edit_works(tmp_path):
    shipped = EDGE / "systemd" / "node-config.toml"
    pi, jetson = [tomllib.loads(b) for b in blocks("toml") if "modalities" in b]
    assert pi == tomllib.loads(shipped.read_text())
    [edit] = [
        words
        for words in shell_commands()
        if words[:3] == ["sudo", "sed", "-i"] and "modalities" in words[3]
    ]
    copy = tmp_path / "node-config.toml"
    copy.write_text(shipped.read_text())
    assert edit[-1] == "/etc/blossom/node-config.toml"
    subprocess.run([*edit[1:-1], str(copy)], check=True)
    assert tomllib.loads(copy.read_text()) == jetson
    assert jetson["device"] == "cuda"


def test_readme_device_data_snippet_makes_data_the_devices_can_load(
    tmp_path, blossom_cache
):
    [snippet] = [body for body in heredocs() if "save_to_disk" in body]
    made = subprocess.run(
        [sys.executable, "-"],
        input=snippet,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    holds = {"pi5": ("acc",), "orin": ("acc", "gyro")}
    rows = 0
    for device, modalities in holds.items():
        path = tmp_path / "device-data" / device
        dataset = load_task_dataset(WATCH, str(path))
        assert set(dataset.column_names) == {*modalities, "label", "recording", "start"}
        rows += len(dataset)
        config = {"modalities": ",".join(modalities), "data-path": str(path)}
        assert NodeConfig.from_node_config(config, WATCH).data_path == str(path)
    assert rows == len(load_task_dataset(WATCH))


@pytest.mark.parametrize("step", ["1. Server", "2. Raspberry Pi", "3. Jetson Orin"])
def test_each_machine_has_logs_and_three_failures(step):
    section = TEXT.split(f"## {step}")[1].split("\n## ")[0]
    assert "What the log" in section
    failures = section.split("three most likely failures")[1]
    assert re.findall(r"^\d\. ", failures, re.M) == ["1. ", "2. ", "3. "]
