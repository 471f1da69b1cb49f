"""The metric vocabulary and its math, shared by clients, the strategy and reporting.

One name per quantity, from a client's reply to a CSV header: a reply or
aggregate ``MetricRecord`` key is written with dashes (``test-loss``) and its
CSV column is the same name with underscores (``test_loss``, ``column``).
Nothing renames a metric on the way.
"""

import math
from collections.abc import Iterable

import numpy as np

# A client's train reply.
TRAIN_EXAMPLES = "train-examples"
TRAIN_LOSS = "train-loss"
TRAIN_SECONDS = "train-seconds"
# A client's evaluate reply (its personalized model on its own test split).
TEST_EXAMPLES = "test-examples"
TEST_LOSS = "test-loss"
ACCURACY = "accuracy"
MACRO_F1 = "macro-f1"
CONFUSION = "confusion"  # true x predicted counts, flattened row-major

# A round's aggregates over clients. ``train-loss``, ``train-examples``,
# ``test-loss`` and ``test-examples`` keep their client names: the losses are
# example-weighted means, the example counts sums.
TRAIN_CLIENTS = "train-clients"
TEST_CLIENTS = "test-clients"
WEIGHTED_ACCURACY = "weighted-accuracy"  # example-weighted mean of clients' values
WEIGHTED_MACRO_F1 = "weighted-macro-f1"
POOLED_ACCURACY = "pooled-accuracy"  # over all clients' test predictions together
POOLED_MACRO_F1 = "pooled-macro-f1"


def column(key: str) -> str:
    """The CSV column of a metric key: ``test-loss`` -> ``test_loss``."""
    return key.replace("-", "_")


#: Client metric column -> (the column of the example count it is weighted
#: with, its axis label). Averages over clients use these weights.
CLIENT_METRICS: dict[str, tuple[str, str]] = {
    column(metric): (column(weight), label)
    for metric, weight, label in (
        (ACCURACY, TEST_EXAMPLES, "Accuracy"),
        (MACRO_F1, TEST_EXAMPLES, "Macro-F1"),
        (TEST_LOSS, TEST_EXAMPLES, "Test loss"),
        (TRAIN_LOSS, TRAIN_EXAMPLES, "Train loss"),
    )
}


def weighted_mean(pairs: Iterable[tuple[float, float]]) -> float:
    """``sum_i w_i v_i / sum_i w_i`` over ``(value, weight)`` pairs; NaN when the
    weights sum to zero (no value)."""
    pairs = list(pairs)
    total = sum(weight for _, weight in pairs)
    if not total:
        return math.nan
    return sum(value * weight for value, weight in pairs) / total


def accuracy(confusion: np.ndarray) -> float:
    """Share of correct predictions in a ``true x predicted`` confusion matrix."""
    return float(np.trace(confusion)) / max(int(confusion.sum()), 1)


def macro_f1(confusion: np.ndarray) -> float:
    """Macro-F1 over the classes present in the labels or the predictions."""
    true_pos = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    present = (support + predicted) > 0
    f1 = 2 * true_pos[present] / (support[present] + predicted[present])
    return float(f1.mean()) if present.any() else 0.0


def confusion_matrix(cells: Iterable[int], like: np.ndarray | None) -> np.ndarray:
    """A flattened confusion matrix as a square ``true x predicted`` array.

    ValueError unless it is square and, when ``like`` is given, of ``like``'s
    shape (every client of a task has the same classes).
    """
    flat = np.asarray(cells, dtype=np.int64)
    side = math.isqrt(flat.size)
    if side * side != flat.size or (like is not None and flat.size != like.size):
        raise ValueError(f"confusion matrix of {flat.size} cells")
    return flat.reshape(side, side)


def summarize_evaluation(
    clients: list[dict[str, float]], confusions: list[np.ndarray]
) -> dict[str, float]:
    """A round's evaluation over clients.

    ``clients``: each client's ``test-examples``, ``test-loss``, ``accuracy``
    and ``macro-f1``; ``confusions``: their confusion matrices. Returns the
    example-weighted means (the paper's convention) and the pooled metrics of
    all test predictions together.
    """

    def mean(key: str) -> float:
        return weighted_mean((c[key], c[TEST_EXAMPLES]) for c in clients)

    pooled = sum(confusions)
    return {
        TEST_EXAMPLES: sum(c[TEST_EXAMPLES] for c in clients),
        TEST_CLIENTS: len(clients),
        TEST_LOSS: mean(TEST_LOSS),
        WEIGHTED_ACCURACY: mean(ACCURACY),
        WEIGHTED_MACRO_F1: mean(MACRO_F1),
        POOLED_ACCURACY: accuracy(pooled),
        POOLED_MACRO_F1: macro_f1(pooled),
    }
