"""Read dataset columns as numpy arrays, without touching the other columns."""

import datasets
import numpy as np

from blossom_app.benchmarks.task import ModalitySpec
from blossom_app.errors import DataError


def numpy_columns(
    dataset: datasets.Dataset, columns: list[str]
) -> dict[str, np.ndarray]:
    """Return ``{column: array}``, each array ``len(dataset) x *example_shape``."""
    return dataset.with_format("numpy", columns=columns)[:]


def modality_array(dataset: datasets.Dataset, spec: ModalitySpec) -> np.ndarray:
    """One modality of every row, float32 ``len(dataset) x *spec.shape``: the
    column's arrays, or its stored values (audio, text, images) through
    ``spec.features``."""
    if spec.features is None:
        array = numpy_columns(dataset, [spec.column])[spec.column]
        return array.astype(np.float32, copy=False)
    examples = [features_of(spec, value) for value in dataset[spec.column]]
    if not examples:
        return np.zeros((0, *spec.shape), dtype=np.float32)
    return np.stack(examples)


def features_of(spec: ModalitySpec, value: object) -> np.ndarray:
    """``spec.features(value)``; a DataError names the column when it fails."""
    try:
        return spec.features(value)
    except Exception as error:
        raise DataError(
            f"Column '{spec.column}' (modality '{spec.name}') holds a value that "
            f"could not be turned into {spec.preprocessing or 'its features'}: "
            f"{error}"
        ) from error
