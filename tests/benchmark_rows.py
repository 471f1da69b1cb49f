"""Small datasets in a benchmark's schema: real arrays of the right shapes and
dtypes, a few dozen rows, as the hub would serve them (no network)."""

from pathlib import Path

import datasets
import numpy as np

from blossom_app.benchmarks import Task


def rows(task: Task, count: int, groups: int = 3, seed: int = 0) -> dict[str, list]:
    """``count`` rows: every modality column, the label, the group column."""
    rng = np.random.default_rng(seed)
    data = {
        spec.column: rng.standard_normal(
            (count, *spec.shape), dtype=np.float32
        ).tolist()
        for spec in task.modalities
    }
    data[task.label_column] = (np.arange(count) % task.num_classes).tolist()
    if task.group_column:
        ids = np.arange(count) * groups // count  # consecutive rows per group
        data[task.group_column] = [
            f"site-{i}" if task.name == "ptbxl" else int(i) for i in ids
        ]
    return data


def write(task: Task, path: Path, count: int, fmt: str = "parquet", **edits) -> Path:
    """Write such a dataset to ``path`` (a parquet file, or a ``save_to_disk``
    directory with ``fmt="disk"``); ``edits`` replace or (None) drop columns."""
    data = rows(task, count)
    for column, value in edits.items():
        if value is None:
            del data[column]
        else:
            data[column] = value
    dataset = datasets.Dataset.from_dict(data)
    if fmt == "disk":
        dataset.save_to_disk(str(path))
    else:
        dataset.to_parquet(str(path))
    return path
