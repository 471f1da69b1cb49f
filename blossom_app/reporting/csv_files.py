"""Write and read metric rows as CSV."""

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from blossom_app.atomic_files import atomic_open


def write_rows(path: Path, rows: Iterable[Mapping[str, object]]) -> Path:
    """Write ``rows`` to ``path``; return the path.

    Columns are the union of the rows' keys in order of first appearance; a
    missing value (absent key or NaN) is written as an empty cell. The file
    is written atomically (``atomic_files``): no reader sees half of it.
    """
    rows = list(rows)
    fields: list[str] = []
    for row in rows:
        fields += [key for key in row if key not in fields]
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(
            {key: "" if _is_nan(value) else value for key, value in row.items()}
            for row in rows
        )
    return path


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts of strings (an empty cell is ``""``)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def number(cell: object) -> float:
    """A CSV cell as a float; an empty cell is NaN."""
    return float(cell) if cell != "" else float("nan")
