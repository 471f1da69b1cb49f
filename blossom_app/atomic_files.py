"""Write files atomically: a crash at any moment leaves the old file or the new one.

The rule, for every file the app writes (CSVs, config.toml, plots, models, model
cards, cached arrays, private state): write a temporary file in the target's
directory (``.<name>.<random>.partial``), flush and fsync it, rename it onto the
target (``os.replace``, atomic on POSIX and Windows), then fsync the directory so
the rename itself survives a power cut. A reader never sees half a file; a crash
leaves at most a ``.partial`` file beside the target, which nothing reads.
``tests/test_atomic_files.py`` checks that no module writes a file another way.
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

#: The mode ``open(path, "w")`` would create a file with (mkstemp makes 0600).
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


@contextmanager
def atomic_open(path: Path, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """A handle to a temporary file that becomes ``path`` when the block ends.

    ``mode`` is ``"wb"`` or ``"w"`` (``open_kwargs`` as for ``open``: encoding,
    newline). If the block raises, the temporary file is removed and ``path``
    keeps what it held.
    """
    if mode not in ("w", "wb"):
        raise ValueError(
            f"atomic_open writes a whole file: mode 'w' or 'wb', not {mode!r}"
        )
    path = Path(path)
    handle, scratch = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".partial", dir=path.parent
    )
    try:
        with os.fdopen(handle, mode, **open_kwargs) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        _commit(Path(scratch), path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, with its suffix, renamed onto ``path``
    when the block ends: for writers that take a file name, not a handle. If the
    block raises, the temporary file is removed and ``path`` keeps what it held."""
    path = Path(path)
    handle, scratch = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".partial{path.suffix}", dir=path.parent
    )
    os.close(handle)
    try:
        yield Path(scratch)
        with open(scratch, "rb+") as written:
            os.fsync(written.fileno())
        _commit(Path(scratch), path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def write_text_atomically(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; return the path."""
    with atomic_open(path, "w", encoding=encoding) as out:
        out.write(text)
    return path


def _commit(scratch: Path, path: Path) -> None:
    """Give ``scratch`` a plain file's mode, rename it onto ``path``, and fsync
    the directory where the platform can open one (not on Windows)."""
    os.chmod(scratch, _FILE_MODE)
    os.replace(scratch, path)
    try:
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass  # a file system that cannot sync a directory: the rename stands
    finally:
        os.close(directory)
