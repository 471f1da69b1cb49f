"""Every file the app writes is written atomically (``blossom_app/atomic_files.py``).

A crash at any moment leaves the old file or the new one, never half of one: a
real ``SIGKILL`` in the middle of a write shows it. A static guard scans every
module of the package for a file written any other way.
"""

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from blossom_app.atomic_files import atomic_open, atomic_path, write_text_atomically

APP = Path(__file__).resolve().parents[1]
PACKAGE = APP / "blossom_app"
OLD = "old content, whole\n"

# --- the helper ------------------------------------------------------------------

CHILD = {
    "atomic_open": """
with atomic_open(path, "w", encoding="utf-8") as out:
    out.write("new " * 5000)
    out.flush()
    os.fsync(out.fileno())
    os.kill(os.getpid(), signal.SIGKILL)
""",
    "atomic_path": """
with atomic_path(path) as scratch:
    scratch.write_text("new " * 5000)
    os.kill(os.getpid(), signal.SIGKILL)
""",
}


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
@pytest.mark.timeout(60)
@pytest.mark.parametrize("helper", sorted(CHILD))
def test_a_process_killed_mid_write_leaves_the_old_file_whole(tmp_path, helper):
    path = tmp_path / "metrics.csv"
    path.write_text(OLD)
    child = "\n".join(
        [
            "import os, signal, sys",
            "from pathlib import Path",
            f"from blossom_app.atomic_files import {helper}",
            "path = Path(sys.argv[1])",
            CHILD[helper],
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", child, str(path)],
        cwd=APP,
        env={**os.environ, "PYTHONPATH": str(APP)},
        capture_output=True,
        timeout=50,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert path.read_text() == OLD  # exactly the old content
    # Besides the target, only the dead writer's temporary file: hidden, named
    # after the target, ending ``.partial`` (plus the suffix for atomic_path),
    # holding the half-written new content that nothing reads.
    [leftover] = [p for p in tmp_path.iterdir() if p != path]
    assert leftover.name.startswith(".metrics.csv.")
    assert ".partial" in leftover.name and leftover.suffix in (".partial", ".csv")
    assert leftover.read_text().startswith("new new")


@pytest.mark.parametrize("helper", ["atomic_open", "atomic_path"])
def test_an_error_in_the_block_keeps_the_old_file_and_removes_the_temporary(
    tmp_path, helper
):
    path = tmp_path / "model.onnx"
    path.write_text(OLD)
    with pytest.raises(RuntimeError, match="writer failed"):
        if helper == "atomic_open":
            with atomic_open(path, "w") as out:
                out.write("half")
                raise RuntimeError("writer failed")
        else:
            with atomic_path(path) as scratch:
                scratch.write_text("half")
                raise RuntimeError("writer failed")
    assert path.read_text() == OLD
    assert list(tmp_path.iterdir()) == [path]


def test_success_replaces_the_content_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(OLD)
    with atomic_open(path) as out:
        out.write(b"a = 1\n")
    assert path.read_bytes() == b"a = 1\n"
    assert write_text_atomically(tmp_path / "new.md", "text\n") == tmp_path / "new.md"
    assert (tmp_path / "new.md").read_text() == "text\n"
    with atomic_path(tmp_path / "model.int8.onnx") as scratch:
        assert scratch.parent == tmp_path and scratch.suffix == ".onnx"
        assert scratch.name.startswith(".model.int8.onnx.")
        scratch.write_bytes(b"onnx")
    assert (tmp_path / "model.int8.onnx").read_bytes() == b"onnx"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.toml",
        "model.int8.onnx",
        "new.md",
    ]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_a_file_gets_the_mode_a_plain_open_gives(tmp_path):
    (tmp_path / "plain").write_text("x")
    write_text_atomically(tmp_path / "atomic", "x")
    modes = {p.name: p.stat().st_mode for p in tmp_path.iterdir()}
    assert modes["atomic"] == modes["plain"]  # not mkstemp's 0600


def test_atomic_open_refuses_a_mode_that_would_not_write_a_whole_file(tmp_path):
    with pytest.raises(ValueError, match="'a'"), atomic_open(tmp_path / "x", "a"):
        pass


# --- the guard: no module writes a file another way -------------------------------

#: Calls that write a file, by method or function name (``path.write_text``).
WRITER_NAMES = {
    "write_text",
    "write_bytes",
    "savefig",
    "save_to_disk",
    "quantize_dynamic",
    "FileHandler",
}
#: Calls that write a file, by dotted name.
WRITER_FUNCTIONS = {
    "np.save",
    "np.savez",
    "np.savez_compressed",
    "torch.save",
    "torch.onnx.export",
    "onnx.save",
    "onnx.save_model",
}
#: The context managers that make writes in their block atomic.
ATOMIC = {"atomic_open", "atomic_path"}
#: In-memory files: a write into one is no file write.
IN_MEMORY = {"BytesIO", "StringIO"}

#: (module, writer) -> why it may write directly.
ALLOWED = {
    ("reporting/output.py", "FileHandler"): (
        "run.log appends log lines as they happen; a log is allowed (a crash cuts "
        "at most its last line)"
    ),
    **{
        (module, "save_to_disk"): (
            "builds the embedded dataset into a private scratch directory that "
            "data/loading.py renames into place whole (a directory, not a file)"
        )
        for module in (
            "benchmarks/watch/embedded.py",
            "benchmarks/synthetic/__init__.py",
        )
    },
}


def _dotted(node: ast.expr) -> str:
    """``np.savez`` for ``np.savez``; ``?.write_text`` for ``(a / b).write_text``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _write_mode(call: ast.Call) -> bool:
    """Whether an ``open``-like call names a writing mode (w, a, x or +)."""
    modes = [kw.value for kw in call.keywords if kw.arg == "mode"] + call.args[:2]
    return any(
        isinstance(mode, ast.Constant)
        and isinstance(mode.value, str)
        and set(mode.value) <= set("rwxabt+")
        and set(mode.value) & set("wax+")
        for mode in modes
    )


def _writer(call: ast.Call) -> str | None:
    dotted = _dotted(call.func)
    name = dotted.rsplit(".", 1)[-1]
    if name in WRITER_NAMES:
        return name
    if dotted in WRITER_FUNCTIONS:
        return dotted
    if name in ("open", "fdopen") and _write_mode(call):
        return f"{name}(write mode)"
    return None


class _Writes(ast.NodeVisitor):
    """File writes outside a ``with atomic_open/atomic_path`` block, into
    anything but an in-memory buffer: ``(line, writer)``."""

    def __init__(self, tree: ast.Module) -> None:
        self.buffers = {
            target.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and _dotted(node.value.func).rsplit(".", 1)[-1] in IN_MEMORY
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        self.atomic = 0
        self.found: list[tuple[int, str]] = []
        self.visit(tree)

    def visit_With(self, node: ast.With) -> None:
        atomic = any(
            isinstance(item.context_expr, ast.Call)
            and _dotted(item.context_expr.func).rsplit(".", 1)[-1] in ATOMIC
            for item in node.items
        )
        for item in node.items:
            self.visit(item)
        self.atomic += atomic
        for statement in node.body:
            self.visit(statement)
        self.atomic -= atomic

    visit_AsyncWith = visit_With

    def visit_Call(self, node: ast.Call) -> None:
        writer = _writer(node)
        arguments = [*node.args, *(kw.value for kw in node.keywords)]
        in_memory = any(
            isinstance(a, ast.Name) and a.id in self.buffers for a in arguments
        )
        if writer and not self.atomic and not in_memory:
            self.found.append((node.lineno, writer))
        self.generic_visit(node)


def direct_writes(source: str) -> list[tuple[int, str]]:
    return _Writes(ast.parse(source)).found


def package_writes() -> dict[tuple[str, str], list[int]]:
    """(module, writer) -> lines, for every direct write in the package."""
    found: dict[tuple[str, str], list[int]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module == "atomic_files.py":
            continue
        for line, writer in direct_writes(path.read_text(encoding="utf-8")):
            found.setdefault((module, writer), []).append(line)
    return found


def test_no_module_writes_a_file_but_through_atomic_files():
    found = package_writes()
    direct = {
        f"blossom_app/{module}:{','.join(map(str, lines))} {writer}"
        for (module, writer), lines in found.items()
        if (module, writer) not in ALLOWED
    }
    assert not direct, (
        "write these through blossom_app.atomic_files (atomic_open, atomic_path, "
        f"write_text_atomically): {sorted(direct)}"
    )
    stale = sorted(set(ALLOWED) - set(found))
    assert not stale, f"allowed writes that no longer exist: remove {stale}"


def test_the_guard_finds_a_direct_write_and_passes_an_atomic_one():
    assert direct_writes('Path("x").write_text("y")') == [(1, "write_text")]
    assert direct_writes("np.savez(path, **arrays)") == [(1, "np.savez")]
    assert direct_writes('torch.onnx.export(m, x, f="m.onnx")') == [
        (1, "torch.onnx.export")
    ]
    assert direct_writes('with path.open("a") as f: pass') == [(1, "open(write mode)")]
    assert direct_writes('open(path, mode="wb")') == [(1, "open(write mode)")]
    assert direct_writes("figure.savefig(path, dpi=110)") == [(1, "savefig")]
    atomic = """
with atomic_open(path) as handle:
    figure.savefig(handle, format="png")
with atomic_path(path) as scratch:
    quantize_dynamic(source, scratch)
buffer = io.BytesIO()
torch.onnx.export(model, example, buffer)
with path.open() as f, open(path, "rb") as g:
    pass
"""
    assert direct_writes(atomic) == []
