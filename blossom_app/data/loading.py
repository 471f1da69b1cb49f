"""Load a task's dataset from wherever it lives, through HF ``datasets``.

A source is one of: ``embedded`` (built once from data shipped in a package and
cached), a directory written by ``save_to_disk``, a local ``.parquet`` /
``.arrow`` file or a directory of such files, or a hub dataset id.
"""

import math
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import datasets
import numpy as np

from blossom_app.benchmarks.task import ModalitySpec, Task
from blossom_app.data.cache import cache_dir, source_identity
from blossom_app.data.columns import features_of, numpy_columns
from blossom_app.errors import DataError

# Client logs are read by people: no per-call progress bars from `datasets`.
datasets.disable_progress_bars()

FILE_FORMATS = {".parquet": "parquet", ".arrow": "arrow"}
# Values read at a time when checking a column for NaN and inf (64 MB as float32).
_CHECK_BATCH_VALUES = 1 << 24
_SAVED_MARKERS = ("state.json", "dataset_dict.json")

# Per-process cache by task (its columns too), source and its content: clients
# load once per process.
_loaded: dict[tuple[Task, str, str], datasets.Dataset] = {}


def load_task_dataset(task: Task, source: str = "") -> datasets.Dataset:
    """Load and validate the dataset of ``task`` from ``source`` (its columns,
    shapes and labels, and that its arrays hold no NaN or inf).

    ``source`` defaults to ``task.source``. A multi-split dataset
    (``DatasetDict``) yields its ``train`` split, or all splits concatenated
    when it has no ``train`` split. Audio columns are read undecoded (the
    task's features decode them); labels are encoded with the task's
    ``label_map``, leaving out rows of other labels. Results are cached per
    process, keyed by task, source and (for local files) their sizes and
    times; treat them as read-only.
    """
    source = source or task.source
    key = (task, source, repr(source_identity(task, source)))
    if key not in _loaded:
        dataset = _as_single_split(_load(task, source), source)
        dataset = encode_labels(_undecoded_audio(dataset), task)
        present = [
            spec.name for spec in task.modalities if spec.column in dataset.column_names
        ]
        if not present:
            raise DataError(
                f"The dataset at '{source}' has none of the modality columns of "
                f"task '{task.name}' ({', '.join(task.modality_names)}); it has "
                f"{dataset.column_names}. Map them with the run config's "
                "data-columns, or rename them (Dataset.rename_column)."
            )
        validate_columns(dataset, task, present)
        check_finite(dataset, task, present, source)
        _loaded[key] = dataset
    return _loaded[key]


def require_columns(
    dataset: datasets.Dataset,
    task: Task,
    modalities: Iterable[str],
    group: bool = False,
) -> list[str]:
    """The columns a client holding ``modalities`` reads (the group column too
    with ``group``, for the natural partitioner); DataError if any is missing."""
    needed = [task.modality(name).column for name in modalities]
    needed.append(task.label_column)
    if group and task.group_column:
        needed.append(task.group_column)
    missing = [column for column in needed if column not in dataset.column_names]
    if missing:
        raise DataError(
            f"The dataset for task '{task.name}' lacks column(s) {missing}; it has "
            f"{dataset.column_names}. Map them with the run config's data-columns "
            f'(e.g. "{task.modality_names[0]}=<column>,label=<column>"), rename '
            f"them (Dataset.rename_column), point data-source (or the node's "
            f"data-path) at a dataset with columns {needed}, or declare only the "
            "modalities the data has."
        )
    return needed


def validate_columns(
    dataset: datasets.Dataset, task: Task, modalities: Iterable[str]
) -> None:
    """Check the columns of ``modalities`` and the labels of ``dataset``.

    Each modality column must hold examples of shape ``spec.shape`` (checked on
    the first row), and labels must be integers in ``[0, task.num_classes)``.
    """
    specs = [task.modality(name) for name in modalities]
    needed = require_columns(dataset, task, modalities)
    if len(dataset) == 0:
        raise DataError(f"The dataset for task '{task.name}' has no rows.")
    first = dataset.select_columns(needed)[0]
    for spec in specs:
        value = first[spec.column]
        shape = np.shape(value if spec.features is None else features_of(spec, value))
        if shape != spec.shape:
            raise DataError(
                f"Column '{spec.column}' holds examples of shape {shape}, but task "
                f"'{task.name}' expects {spec.shape}. Reshape or resample the data."
            )
    _check_labels(numpy_columns(dataset, [task.label_column])[task.label_column], task)


def check_finite(
    dataset: datasets.Dataset, task: Task, modalities: Iterable[str], source: str
) -> None:
    """DataError unless every value in the array columns of ``modalities`` is
    finite: one NaN or inf input makes every loss and update after it NaN.

    Read once per loaded dataset, in batches; columns that ``spec.features``
    turns into arrays (audio, text, images) hold no numbers to check here.
    """
    for spec in (task.modality(name) for name in modalities):
        if spec.features is not None:
            continue
        bad = _non_finite_rows(dataset, spec)
        if not len(bad):
            continue
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        kept = " over the rows whose label the task keeps" if task.label_map else ""
        raise DataError(
            f"Column '{spec.column}' (modality '{spec.name}') of dataset "
            f"'{source}' (task '{task.name}') holds NaN or infinite values in "
            f"{len(bad)} of {len(dataset)} rows (rows {shown}, counted from "
            f"0{kept}). Clean those rows (impute the missing values, e.g. "
            "interpolate the gaps) or drop them (Dataset.filter), and point "
            "data-source (or the node's data-path) at the cleaned data."
        )


def _non_finite_rows(dataset: datasets.Dataset, spec: ModalitySpec) -> np.ndarray:
    """Indices of the rows whose ``spec.column`` holds a NaN or inf."""
    rows = dataset.with_format("numpy", columns=[spec.column])
    step = max(1, _CHECK_BATCH_VALUES // math.prod(spec.shape))
    bad = [np.zeros(0, dtype=np.int64)]
    for start in range(0, len(dataset), step):
        batch = rows[start : start + step][spec.column]
        if not np.issubdtype(batch.dtype, np.floating):
            break  # integers are finite (and ragged arrays fail at conversion)
        if not np.isfinite(batch).all():
            finite = np.isfinite(batch.reshape(len(batch), -1)).all(axis=1)
            bad.append(start + np.flatnonzero(~finite))
    return np.concatenate(bad)


def encode_labels(dataset: datasets.Dataset, task: Task) -> datasets.Dataset:
    """``dataset`` with its labels as class indices through ``task.label_map``
    (names, lower-cased, from strings or a ClassLabel's names; otherwise the
    ids), without the rows of other labels; unchanged without a label map."""
    if task.label_map is None or task.label_column not in dataset.column_names:
        return dataset
    feature = dataset.features[task.label_column]
    names = feature.names if isinstance(feature, datasets.ClassLabel) else None
    keys = [
        value.lower() if isinstance(value, str) else value
        for value in (names[v] if names else v for v in dataset[task.label_column])
    ]
    mapped = [task.label_map.get(key) for key in keys]
    kept = [row for row, label in enumerate(mapped) if label is not None]
    if not kept:
        found = sorted({str(key) for key in keys})[:20]
        raise DataError(
            f"No label in column '{task.label_column}' is one task '{task.name}' "
            f"knows: found {found}, expected one of "
            f"{sorted(map(str, task.label_map))}. Map the right column with "
            "data-columns (label=<column>)."
        )
    labels = [mapped[row] for row in kept]
    dataset = dataset.select(kept).remove_columns(task.label_column)
    return dataset.add_column(task.label_column, labels)


def _undecoded_audio(dataset: datasets.Dataset) -> datasets.Dataset:
    """Audio columns cast to stay undecoded: ``audio.decode_audio`` reads
    their bytes (the ``datasets`` decoder would need ``torchcodec``)."""
    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Audio) and feature.decode:
            dataset = dataset.cast_column(name, datasets.Audio(decode=False))
    return dataset


def _check_labels(labels: np.ndarray, task: Task) -> None:
    """Labels (``n``) must be class indices in ``[0, task.num_classes)``."""
    if np.issubdtype(labels.dtype, np.integer):
        if labels.min() >= 0 and labels.max() < task.num_classes:
            return
        found = f"values from {labels.min()} to {labels.max()}"
    else:
        found = f"values of dtype {labels.dtype}"
    raise DataError(
        f"Column '{task.label_column}' must hold class indices in "
        f"[0, {task.num_classes}) for task '{task.name}' "
        f"({', '.join(task.class_names)}); found {found}. Encode the labels "
        "as integers, e.g. with Dataset.class_encode_column."
    )


def _load(task: Task, source: str) -> datasets.Dataset | datasets.DatasetDict:
    if source == "embedded":
        return datasets.load_from_disk(str(_embedded_dir(task)))
    path = Path(source).expanduser()
    if path.is_dir() and any((path / name).is_file() for name in _SAVED_MARKERS):
        return datasets.load_from_disk(str(path))
    if path.exists():
        return _load_files(path)
    return _load_hub(source)


def _embedded_dir(task: Task) -> Path:
    """Build the task's embedded dataset once and return its directory.

    Concurrent processes each build into a private temporary directory next to
    the target and rename it into place; a loser of the race keeps the winner's.
    """
    if task.build_embedded is None:
        raise DataError(
            f"Task '{task.name}' has no embedded dataset. Set data-source to a "
            "hub dataset id or a local path."
        )
    target = cache_dir() / f"{task.name}-embedded"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        task.build_embedded(scratch / "dataset")
        try:
            os.replace(scratch / "dataset", target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _load_files(path: Path) -> datasets.Dataset:
    """Load one ``.parquet``/``.arrow`` file or a directory of them (one format)."""
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    formats = {FILE_FORMATS[f.suffix] for f in files if f.suffix in FILE_FORMATS}
    if len(formats) != 1:
        raise DataError(
            f"{path} is neither a directory written by save_to_disk nor a "
            f"{' or '.join(FILE_FORMATS)} file or a directory of files of one of "
            f"these formats (found formats: {sorted(formats) or 'none'}). Point "
            "data-source at such a path, or at a hub dataset id."
        )
    (builder,) = formats
    data_files = [str(f) for f in files if FILE_FORMATS.get(f.suffix) == builder]
    return datasets.load_dataset(
        builder, data_files=data_files, split="train", cache_dir=str(_hf_cache())
    )


def _load_hub(source: str) -> datasets.Dataset:
    try:
        return datasets.load_dataset(source, split="train", cache_dir=str(_hf_cache()))
    except (OSError, ValueError) as error:
        raise DataError(
            f"Could not load dataset '{source}': it is not an existing local path, "
            f"and loading it as a hub dataset id failed ({error}). Set data-source "
            "to a local save_to_disk directory or parquet/arrow file(s), or to "
            "'embedded' where the task has one."
        ) from error


def _hf_cache() -> Path:
    """HF ``datasets`` cache for converted files and downloads, inside cache_dir()."""
    return cache_dir() / "huggingface"


def _as_single_split(
    loaded: datasets.Dataset | datasets.DatasetDict, source: str
) -> datasets.Dataset:
    if isinstance(loaded, datasets.Dataset):
        return loaded
    if "train" in loaded:
        return loaded["train"]
    if not loaded:
        raise DataError(f"Dataset '{source}' has no splits.")
    return datasets.concatenate_datasets(list(loaded.values()))


def count_groups(task: Task, source: str = "") -> int:
    """The distinct groups of ``task``'s data at ``source``: how many clients
    the ``natural`` partitioner makes of it (loading checks the data too)."""
    dataset = load_task_dataset(task, source)
    require_columns(dataset, task, (), group=True)
    return len(dataset.unique(task.group_column))
