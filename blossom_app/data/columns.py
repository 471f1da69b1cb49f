"""Read dataset columns as numpy arrays, without touching the other columns."""

import datasets
import numpy as np


def numpy_columns(
    dataset: datasets.Dataset, columns: list[str]
) -> dict[str, np.ndarray]:
    """Return ``{column: array}``, each array ``len(dataset) x *example_shape``."""
    return dataset.with_format("numpy", columns=columns)[:]
