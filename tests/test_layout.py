"""The layout's rules (docs/architecture.md): packages by process, enforced.

The import-linter contracts live in ``pyproject.toml``; ``.ci/run`` runs
``lint-imports`` beside ruff, and these tests run it too, so a newcomer's
``pytest`` catches a crossed line. A contract that could not fail proves
nothing: one test breaks a copy of the package on purpose.
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

APP = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
#: The ClientApp module a node loads (``[tool.flwr.app.components]``).
CLIENT_APP = "blossom_app.client.client_app"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(120)
def test_the_import_contracts_are_kept():
    result = lint_imports(APP)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.timeout(120)
def test_a_node_module_importing_the_server_breaks_a_contract(tmp_path: Path):
    shutil.copytree(APP / "blossom_app", tmp_path / "blossom_app")
    shutil.copy(APP / "pyproject.toml", tmp_path)
    crossed = tmp_path / "blossom_app" / "client" / "client_state.py"
    crossed.write_text(
        crossed.read_text() + "\nfrom blossom_app.server.fleet import Fleet  # noqa\n"
    )
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "blossom_app.client.client_state -> blossom_app.server.fleet" in (
        result.stdout
    )


def node_modules() -> set[str]:
    """Every module of the app a node process loads: the ClientApp and all it
    imports, at module level or inside functions."""
    graph = grimp.build_graph("blossom_app")
    return {CLIENT_APP, *graph.find_upstream_modules(CLIENT_APP)}


def imported_names(module: str) -> set[str]:
    spec_path = APP / (module.replace(".", "/") + ".py")
    path = (
        spec_path if spec_path.exists() else spec_path.with_suffix("") / "__init__.py"
    )
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return names


def test_a_node_loads_no_server_side_module_of_the_app_nor_flwr_serverapp():
    modules = node_modules()
    assert "blossom_app.client.local_client" in modules  # the graph is real
    server_side = ("blossom_app.server", "blossom_app.tools", "blossom_app.reporting")
    assert not [m for m in modules if m.startswith(server_side)]
    importing_serverapp = [
        module
        for module in sorted(modules)
        if any(
            name == "flwr.serverapp" or name.startswith("flwr.serverapp.")
            for name in imported_names(module)
        )
    ]
    assert importing_serverapp == []
