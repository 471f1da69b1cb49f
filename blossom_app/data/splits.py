"""Mark each example train or test, once for the whole dataset.

The split is made before partitioning, so an example is test for every client.
Overlapping windows cut from one recording must not straddle the split: a
training window that shares samples with a test window would leak them.
"""

import datasets
import numpy as np

from .columns import numpy_columns

SPLIT_COLUMN = "is_test"
WINDOW_COLUMNS = ("recording", "start")


def split_dataset(
    dataset: datasets.Dataset, test_fraction: float, seed: int, window: int
) -> datasets.Dataset:
    """Return ``dataset`` with a boolean ``is_test`` column.

    Windowed data (``recording`` and ``start`` columns; ``window`` samples per
    example): each recording is cut in time at ``ceil((1 - test_fraction) * L)``,
    ``L = max(start) + window``. Windows ending by the cut are train, windows
    starting at or after it are test, and windows straddling it are dropped.
    Otherwise examples are independent: a permutation seeded with ``seed``
    marks ``round(test_fraction * n)`` of them test.
    """
    if all(column in dataset.column_names for column in WINDOW_COLUMNS):
        return _split_in_time(dataset, test_fraction, window)
    order = np.random.default_rng(seed).permutation(len(dataset))
    is_test = np.zeros(len(dataset), dtype=bool)
    is_test[order[: round(test_fraction * len(dataset))]] = True
    return dataset.add_column(SPLIT_COLUMN, is_test.tolist())


def _split_in_time(
    dataset: datasets.Dataset, test_fraction: float, window: int
) -> datasets.Dataset:
    columns = numpy_columns(dataset, list(WINDOW_COLUMNS))
    recordings, starts = columns["recording"], columns["start"]
    ids, per_row = np.unique(recordings, return_inverse=True)
    length = np.zeros(len(ids), dtype=np.int64)
    np.maximum.at(length, per_row, starts + window)
    cut = np.ceil((1 - test_fraction) * length).astype(np.int64)[per_row]
    is_train = starts + window <= cut
    is_test = starts >= cut
    keep = np.flatnonzero(is_train | is_test)
    return dataset.add_column(SPLIT_COLUMN, is_test.tolist()).select(keep)
