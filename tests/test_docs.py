"""The documentation is tested like code.

- Every relative link in README.md, docs/*.md, edge/README.md and bench/RESULTS.md
  resolves to a file (and a heading, for ``#anchor`` links).
- Every ``blossom``, ``flwr``, ``flower-superlink`` and ``flower-supernode`` command
  line in the shell blocks of README.md and docs/*.md parses against the real
  command line interface, and the run config it passes names real keys with values
  the app accepts.
- docs/configuration.md documents exactly the run-config keys of pyproject.toml,
  with their defaults, and exactly the node-config keys of ``NodeConfig``.
- docs/architecture.md lists exactly the modules of the package, names every message
  and record of the protocol, and every results file and column.
- The README stays short and starts with the commands CI runs.
"""

import functools
import importlib
import re
import shlex
import sys
import tomllib
from pathlib import Path

import click
import numpy as np
import pytest
from federation import cli_flags, command_options
from flwr.app import Array, ArrayRecord
from flwr.common.config import parse_config_args

from blossom_app.benchmarks import registered
from blossom_app.benchmarks.watch import WATCH
from blossom_app.common import metrics, protocol
from blossom_app.common.config import ExperimentConfig
from blossom_app.common.node_config import NodeConfig
from blossom_app.common.profile import NodeProfile
from blossom_app.errors import ConfigError
from blossom_app.reporting import layout
from blossom_app.reporting.output import (
    CLIENT_COLUMNS,
    TIMING_PHASES,
    aggregated_rows,
    timing_rows,
)
from blossom_app.reporting.run_record import RunRecord
from blossom_app.tools import cli

pytestmark = pytest.mark.timeout(60)

APP = Path(__file__).resolve().parents[1]
PACKAGE = APP / "blossom_app"
README = APP / "README.md"
DOCS = APP / "docs"
#: Documents whose shell blocks show commands to type.
WITH_COMMANDS = [README, *sorted(DOCS.glob("*.md"))]
#: Documents whose links are checked.
WITH_LINKS = [*WITH_COMMANDS, APP / "edge" / "README.md", APP / "bench" / "RESULTS.md"]
SHELL = {"bash", "sh", "shell", "console", ""}
RUN_CONFIG = tomllib.loads((APP / "pyproject.toml").read_text())["tool"]["flwr"]["app"][
    "config"
]


def relative(path: Path) -> str:
    return path.relative_to(APP).as_posix()


def fenced(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced code block."""
    return re.findall(r"^```([\w-]*)\n(.*?)^```", text, re.M | re.S)


def prose(text: str) -> str:
    """``text`` without its code: fenced blocks and inline code spans."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section (up to the next ``## ``)."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every markdown table row in ``text`` (separator rows left out)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"[|\-: ]+", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# --- links ---------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"`", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M)}


def links(text: str) -> list[str]:
    """Targets of inline links and images, and of reference definitions."""
    body = prose(text)
    inline = re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", body)
    return inline + re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", body, re.M)


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in links(path.read_text()):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, mailto:, ...
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
            broken.append(f"{target} (no such heading)")
    return broken


@pytest.mark.parametrize("path", WITH_LINKS, ids=relative)
def test_every_relative_link_resolves(path):
    assert not broken_links(path), f"{relative(path)}: {broken_links(path)}"


def test_the_readme_links_every_document():
    linked = {
        (README.parent / t.partition("#")[0]).resolve()
        for t in links(README.read_text())
    }
    unlinked = [relative(p) for p in DOCS.glob("*.md") if p.resolve() not in linked]
    assert not unlinked, f"README.md does not link {unlinked}"


# --- commands ------------------------------------------------------------------


def command_lines(path: Path) -> list[list[str]]:
    """The words of every command line in the document's shell blocks
    (``\\`` continuations joined, comments and a ``$ `` prompt dropped)."""
    commands = []
    for language, body in fenced(path.read_text()):
        if language not in SHELL:
            continue
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            if words := shlex.split(line.removeprefix("$ "), comments=True):
                commands.append(words)
    return commands


def run_config_problem(texts: list[str] | tuple[str, ...] | None) -> str | None:
    """Why the ``--run-config`` values ``texts`` would not run, or None."""
    if not texts:
        return None
    if len(texts) == 1 and texts[0].endswith(".toml"):
        file = APP / texts[0]
        if not file.is_file():
            return f"no such run-config file {texts[0]}"
        overrides = tomllib.loads(file.read_text())
    else:
        overrides = parse_config_args(list(texts))
    unknown = sorted(set(overrides) - set(RUN_CONFIG))
    if unknown:
        return f"unknown run-config keys {unknown}"
    if str(overrides.get("dataset", "watch")) not in registered():
        return None  # a plug-in's example: it runs once the plug-in is installed
    try:
        ExperimentConfig.from_run_config({**RUN_CONFIG, **overrides}, RUN_CONFIG)
    except ConfigError as error:
        return str(error)
    return None


def blossom_problem(words: list[str]) -> str | None:
    try:
        args = cli.parser().parse_args(words[1:])
    except SystemExit as exit:
        return f"blossom refuses it (exit {exit.code})"
    if args.command == "sweep":
        try:
            cli.sweep_grid(args).cells(
                APP, APP / "unused-results", parse_config_args(args.run_config)
            )
        except ConfigError as error:
            return str(error)
        return None
    return run_config_problem(getattr(args, "run_config", None))


@functools.cache
def flwr_cli() -> click.Command:
    from flwr.cli.app import typer_click_object

    return typer_click_object


def flwr_problem(words: list[str]) -> str | None:
    """Parse ``flwr …`` with Flower's own command objects, invoking nothing."""
    command, context, name, args = flwr_cli(), None, "flwr", words[1:]
    try:
        while isinstance(command, click.Group):
            context = click.Context(command, info_name=name, parent=context)
            if not args:
                return "no subcommand"
            name, args = args[0], args[1:]
            command = command.get_command(context, name)
            if command is None:
                return f"flwr has no command {' '.join(words[: words.index(name) + 1])}"
        params = command.make_context(name, list(args), parent=context).params
    except click.ClickException as error:
        return error.format_message()
    return run_config_problem(params.get("run_config_overrides"))


def flower_problem(words: list[str]) -> str | None:
    """``flower-superlink`` / ``flower-supernode``: real flags, and a node config
    that the app accepts."""
    given = command_options(words[1:])
    unknown = sorted(set(given) - cli_flags(words[0]))
    if unknown:
        return f"{words[0]} has no {unknown}"
    if "--node-config" in given:
        try:
            NodeConfig.from_node_config(
                parse_config_args([given["--node-config"]]), WATCH
            )
        except ConfigError as error:
            return str(error)
    return None


CHECKS = {
    "blossom": blossom_problem,
    "flwr": flwr_problem,
    "flower-superlink": flower_problem,
    "flower-supernode": flower_problem,
}


@pytest.mark.parametrize("path", WITH_COMMANDS, ids=relative)
def test_every_command_shown_runs_against_the_real_cli(path):
    problems = [
        f"{shlex.join(words)}: {problem}"
        for words in command_lines(path)
        if words[0] in CHECKS and (problem := CHECKS[words[0]](words))
    ]
    assert not problems, "\n".join(problems)


def test_the_documents_show_commands_of_every_kind():
    shown = {words[0] for path in WITH_COMMANDS for words in command_lines(path)}
    assert set(CHECKS) <= shown  # the command checks above are not vacuous


def test_the_command_checks_catch_a_bad_command():
    assert blossom_problem(["blossom", "run", "--rounds", "3"])
    assert blossom_problem(["blossom", "run", "--run-config", "num-rounds=3"])
    assert blossom_problem(["blossom", "run", "--run-config", "aggregation='none'"])
    assert blossom_problem(["blossom", "sweep", "--policies", "full"])
    assert flwr_problem(["flwr", "runn", "."])
    assert flwr_problem(["flwr", "run", ".", "--streaming"])
    assert flwr_problem(["flwr", "run", ".", "--run-config", "rounds=3"])
    assert flwr_problem(["flwr", "federation", "simulation-config", "--nodes", "3"])


# --- configuration -------------------------------------------------------------

CONFIGURATION = (DOCS / "configuration.md").read_text()


def documented_keys(heading: str) -> dict[str, str]:
    """Key -> its default cell, from the first table of a configuration.md section."""
    keys = {}
    for row in table_rows(section(CONFIGURATION, heading))[1:]:
        for key in code_spans(row[0]):
            keys[key] = row[1]
    return keys


def test_configuration_documents_every_run_config_key_and_no_other():
    documented = documented_keys("Run config")
    missing = sorted(set(RUN_CONFIG) - set(documented))
    unknown = sorted(set(documented) - set(RUN_CONFIG))
    assert not missing, f"docs/configuration.md does not document {missing}"
    assert not unknown, f"docs/configuration.md documents unknown keys {unknown}"


def test_configuration_gives_each_run_config_key_its_default():
    for key, cell in documented_keys("Run config").items():
        if key not in RUN_CONFIG:
            continue  # an unknown key: the test above says so
        [default] = code_spans(cell)
        assert tomllib.loads(f"v = {default}")["v"] == RUN_CONFIG[key], key


def test_configuration_documents_every_node_config_key_and_no_other():
    assert set(documented_keys("Node config")) == set(NodeConfig.KEYS)


def test_the_readme_settings_are_real_keys_with_their_defaults():
    rows = table_rows(section(README.read_text(), "Most-used settings"))[1:]
    assert rows
    for row in rows:
        keys, defaults = code_spans(row[0]), code_spans(row[1])
        assert len(keys) == len(defaults), row
        for key, default in zip(keys, defaults, strict=True):
            assert tomllib.loads(f"v = {default}")["v"] == RUN_CONFIG[key], key


# --- architecture --------------------------------------------------------------

ARCHITECTURE = (DOCS / "architecture.md").read_text()


def documented_layout() -> set[str]:
    """Paths the layout tree of architecture.md lists under ``blossom_app/``:
    ``errors.py``, ``common/blocks.py``, ``benchmarks/watch/``..."""
    [tree] = [
        body for _, body in fenced(ARCHITECTURE) if body.startswith("blossom_app/")
    ]
    paths, package = set(), ""
    for line in tree.splitlines()[1:]:
        indent, name = len(line) - len(line.lstrip()), line.split()[0]
        if indent == 2:
            package = name if name.endswith("/") else ""
            paths.add(name)
        elif indent == 4:
            paths.add(package + name)
    return paths


def package_layout() -> set[str]:
    """The same, from the package: its modules (a subpackage's ``__init__.py``
    is the subpackage itself) and, in ``benchmarks/``, each dataset's folder."""
    paths = set()
    for file in PACKAGE.rglob("*.py"):
        parts = file.relative_to(PACKAGE).parts
        if len(parts) == 1:
            paths.add(parts[0])
        elif len(parts) == 2:
            paths.add(f"{parts[0]}/" if parts[1] == "__init__.py" else "/".join(parts))
        else:  # benchmarks/<dataset>/...
            paths.add(f"{parts[0]}/{parts[1]}/")
    return paths


def test_architecture_lists_every_module_of_the_package_and_no_other():
    documented, actual = documented_layout(), package_layout()
    assert not actual - documented, (
        f"not in docs/architecture.md: {actual - documented}"
    )
    assert not documented - actual, f"no such module: {documented - actual}"


def test_architecture_message_table_names_every_message_and_record():
    rows = table_rows(section(ARCHITECTURE, "Messages"))
    assert [code_spans(row[0]) for row in rows[1:]] == [
        [protocol.PROFILE],
        ["train"],
        ["evaluate"],
        [protocol.EXPORT],
    ]
    named = {span for row in rows for cell in row for span in code_spans(cell)}
    names = {
        value
        for name, value in vars(protocol).items()
        if name.isupper() and isinstance(value, str)
    }
    reply_keys = {
        value
        for name, value in vars(metrics).items()
        if name.isupper()
        and isinstance(value, str)
        and (
            name.startswith(("TRAIN_", "TEST_"))
            or name in {"ACCURACY", "MACRO_F1", "CONFUSION"}
        )
        and not name.endswith("_CLIENTS")
    }
    missing = sorted((names | reply_keys) - named)
    assert not missing, f"the message table does not name {missing}"


def schema_columns(schema: str, file: str) -> list[str]:
    """The columns the results schema's table gives ``file`` (what a column
    holds may follow it in parentheses)."""
    [row] = [row for row in table_rows(schema) if code_spans(row[0]) == [file]]
    return code_spans(re.sub(r"\([^)]*\)", "", row[2]))


def test_architecture_results_schema_names_every_file():
    schema = section(ARCHITECTURE, "Results schema")
    files = [
        value
        for name, value in vars(layout).items()
        if name.isupper() and isinstance(value, str) and name != "RESULTS_ENV"
    ]
    # a name without a suffix is a directory: shown with its slash
    names = [name if "." in name else f"{name}/" for name in files]
    missing = [
        name
        for name in names
        if not re.search(rf"(?<![\w.]){re.escape(name)}(?![\w/])", schema)
    ]
    assert not missing, f"the results schema does not name {missing}"


def test_architecture_results_schema_gives_each_run_file_its_columns():
    """The columns as the code writes them: rows made by the same functions."""
    schema = section(ARCHITECTURE, "Results schema")
    profile = NodeProfile(7, ("acc",), 0, 1, 1, "cpu", "0")
    record = RunRecord({7: profile})
    arrays = ArrayRecord({"head.0.bias": Array(np.zeros(2, np.float32))})
    record.traffic(1, 7, "train", "down", arrays)
    record.reject(1, "train", 7, "a reason")
    evaluation = metrics.summarize_evaluation(
        [{metrics.TEST_EXAMPLES: 1, metrics.TEST_LOSS: 0.0, metrics.ACCURACY: 1.0,
          metrics.MACRO_F1: 1.0}],
        [np.eye(2, dtype=int)],
    )  # fmt: skip
    trained = (metrics.TRAIN_LOSS, metrics.TRAIN_EXAMPLES, metrics.TRAIN_CLIENTS)
    aggregated = aggregated_rows({1: {**dict.fromkeys(trained, 0.0), **evaluation}})
    written = {
        f"run_<k>/{layout.CLIENTS}": list(CLIENT_COLUMNS),
        f"run_<k>/{layout.COMMUNICATION}": list(record.communication[0]),
        f"run_<k>/{layout.REJECTIONS}": list(record.rejections[0]),
        f"run_<k>/{layout.TIMING}": list(
            timing_rows({1: dict.fromkeys(TIMING_PHASES, 0.0)})[0]
        ),
        f"run_<k>/{layout.AGGREGATED}": list(aggregated[0]),
    }
    for file, columns in written.items():
        assert sorted(schema_columns(schema, file)) == sorted(columns), file


# --- the README ------------------------------------------------------------------


def test_the_readme_is_short_and_starts_with_install_run_test():
    text = README.read_text()
    assert text.count("\n") <= 250
    quickstart = section(text, "Quickstart")
    [(_, first), *_] = [block for block in fenced(quickstart) if block[0] == "bash"]
    assert first.splitlines() == ['pip install -e ".[dev]"', "blossom run", "pytest"]


def test_the_personalization_bench_writes_its_table_into_the_docs(
    monkeypatch, tmp_path
):
    monkeypatch.syspath_prepend(str(APP / "bench"))
    bench = importlib.import_module("personalization")
    assert bench.TABLE_DOC == DOCS / "personalization.md"
    for document in (README, bench.TABLE_DOC):
        text = document.read_text()
        expected = 1 if document == bench.TABLE_DOC else 0
        assert text.count(bench.TABLE_START) == text.count(bench.TABLE_END) == expected
    copy = tmp_path / "personalization.md"
    copy.write_text(bench.TABLE_DOC.read_text())
    verdict = {"split": "iid", "gain_over_local": 0.01, "spread": 0.02}
    bench.replace_doc_table(
        "| a |\n|---|\n| 1 |", [{**verdict, "gap_to_centralized": 0.0}], copy
    )
    before, after = bench.TABLE_DOC.read_text(), copy.read_text()
    assert "| a |\n|---|\n| 1 |\n\n- iid: default policy vs local +1.0" in after
    assert after.split(bench.TABLE_START)[0] == before.split(bench.TABLE_START)[0]
    assert after.split(bench.TABLE_END)[1] == before.split(bench.TABLE_END)[1]
    sys.modules.pop("personalization", None)
    sys.modules.pop("harness", None)


def test_every_bad_input_row_names_a_test_that_exists():
    """docs/reliability.md: each row of the bad-input table is a test."""
    table = section(
        (DOCS / "reliability.md").read_text(), "Bad input and the error it gets"
    )
    rows = table_rows(table)[1:]  # below the header
    assert len(rows) >= 20
    missing = []
    for row in rows:
        [named] = code_spans(row[-1])
        file, _, test = named.partition("::")
        source = (APP / file).read_text() if (APP / file).is_file() else ""
        if not re.search(rf"^def {re.escape(test)}\(", source, re.M):
            missing.append(named)
    assert not missing, f"rows naming no test: {missing}"
