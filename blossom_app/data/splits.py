"""Mark each example train or test (and, for adaptive personalization,
validation), once for the whole dataset.

The split is made before partitioning, so an example is test for every client.
Overlapping windows cut from one recording must not straddle the split: a
training window that shares samples with a test window would leak them. The
validation split is carved from the train examples the same way, so a client
chooses its blocks on windows that share no samples with those it trained on.
"""

import datasets
import numpy as np

from blossom_app.data.columns import numpy_columns

SPLIT_COLUMN = "is_test"
HOLDOUT_COLUMN = "holdout"
#: ``holdout`` values: a train example, a validation one, one left out.
TRAIN, VALIDATION, UNUSED = 0, 1, 2
#: The row's index, while the validation split is carved.
_ROW = "__row__"
WINDOW_COLUMNS = ("recording", "start")


def split_dataset(
    dataset: datasets.Dataset,
    test_fraction: float,
    seed: int,
    window: int,
    in_order_by: str | None = None,
) -> datasets.Dataset:
    """Return ``dataset`` with a boolean ``is_test`` column.

    Windowed data (``recording`` and ``start`` columns; ``window`` samples per
    example): each recording is cut in time at ``ceil((1 - test_fraction) * L)``,
    ``L = max(start) + window``. Windows ending by the cut are train, windows
    starting at or after it are test, and windows straddling it are dropped.
    Windows in time order without those columns (``in_order_by``: a group
    column such as the subject, or ``""`` for the whole dataset): see
    ``_split_in_order``. Otherwise examples are independent: a permutation
    seeded with ``seed`` marks ``round(test_fraction * n)`` of them test.
    """
    if all(column in dataset.column_names for column in WINDOW_COLUMNS):
        return _split_in_time(dataset, test_fraction, window)
    if in_order_by is not None:
        return _split_in_order(dataset, test_fraction, in_order_by)
    # a seed stream of its own: partitioning shuffles with ``seed`` itself, and
    # the same permutation would put every test example in the first shards
    order = np.random.default_rng([seed, 1]).permutation(len(dataset))
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


def _split_in_order(
    dataset: datasets.Dataset, test_fraction: float, group: str
) -> datasets.Dataset:
    """Rows are consecutive windows, in time order within each value of the
    ``group`` column (all rows one group when the column is absent or ``""``),
    overlapping their neighbours by up to half a window. Each group's first
    ``ceil((1 - test_fraction) * n)`` rows are train, the rest test, and the
    last train row is dropped: it may overlap the first test row."""
    rows = len(dataset)
    if group and group in dataset.column_names:
        ids = numpy_columns(dataset, [group])[group]
    else:
        ids = np.zeros(rows, dtype=np.int64)
    _, per_row, counts = np.unique(ids, return_inverse=True, return_counts=True)
    order = np.argsort(per_row, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.empty(rows, dtype=np.int64)
    position[order] = np.arange(rows) - starts[per_row[order]]
    cut = np.ceil((1 - test_fraction) * counts).astype(np.int64)[per_row]
    is_train, is_test = position < cut - 1, position >= cut
    keep = np.flatnonzero(is_train | is_test)
    return dataset.add_column(SPLIT_COLUMN, is_test.tolist()).select(keep)


def hold_out_validation(
    dataset: datasets.Dataset,
    fraction: float,
    seed: int,
    window: int,
    in_order_by: str | None = None,
) -> datasets.Dataset:
    """``dataset`` (split by ``split_dataset``) with an int column
    ``holdout``: ``VALIDATION`` for the first ``fraction`` of its train
    examples, cut from the rest as the test split was (by time within each
    recording, in order within each group, or at random from ``seed``'s own
    stream),
    ``UNUSED`` for the train windows straddling that cut, ``TRAIN`` for the
    rest (and the test examples). No row is removed, so the partitions (and
    each client's test examples) are those of the same dataset without it."""
    rows = dataset.add_column(_ROW, list(range(len(dataset))))
    is_test = numpy_columns(rows, [SPLIT_COLUMN])[SPLIT_COLUMN]
    train = rows.select(np.flatnonzero(~is_test)).remove_columns(SPLIT_COLUMN)
    # the first ``fraction`` of the train examples: the rest, which train,
    # stay next to the test examples in time
    carved = numpy_columns(
        split_dataset(train, 1 - fraction, seed + 1, window, in_order_by),
        [_ROW, SPLIT_COLUMN],
    )
    holdout = np.where(is_test, TRAIN, UNUSED).astype(np.int8)
    holdout[carved[_ROW]] = np.where(carved[SPLIT_COLUMN], TRAIN, VALIDATION)
    return dataset.add_column(HOLDOUT_COLUMN, holdout.tolist())
