"""``synthetic``: seeded, learnable windows with ``watch``'s schema and model, as
many as a thousand clients need: the fixture of the scale tests and benches
(DECISIONS 32), not a claim about accuracy, never in the learning tables.

Each row is one window of ``acc`` and ``gyro`` (128 steps x 3 channels, float32),
a ``label`` (7 classes, ``watch``'s names) and a ``subject`` (one per
``WINDOWS_PER_SUBJECT`` rows: the natural partition). A class is a pair of
frequencies (one per modality) in noise; each subject scales the amplitude and
each window draws its phase, so a model has something to learn and either
modality alone suffices. Each subject's windows are split train/test in order
(``overlapping_windows``), so every subject, and every client of a natural
partition, has both at any size. ``synthetic_dataset(rows, seed)`` builds any size (the
tests write small ones to parquet and read them through ``data-source``); the
built-in embedded one has ``ROWS`` rows and goes through the same loading,
splitting, partitioning and caching as every dataset.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np

from blossom_app.benchmarks.watch import WATCH
from blossom_app.benchmarks.watch.embedded import CLASS_NAMES, WINDOW

#: Windows per subject, and rows of the embedded dataset: 1,000 subjects.
WINDOWS_PER_SUBJECT = 24
ROWS = 1_000 * WINDOWS_PER_SUBJECT
RATE = 50.0  # Hz, as watch
NOISE = 0.5


def synthetic_dataset(rows: int = ROWS, seed: int = 0):
    """A ``datasets.Dataset`` of ``rows`` windows (see the module doc)."""
    import datasets  # only when the dataset is built, not when the task is named

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASS_NAMES), rows)
    subjects = np.arange(rows) // WINDOWS_PER_SUBJECT
    gain = rng.uniform(0.7, 1.3, subjects[-1] + 1)[subjects]
    time = np.arange(WINDOW) / RATE
    columns = {}
    for name, base, step in (("acc", 0.5, 0.45), ("gyro", 4.0, -0.4)):
        frequency = base + step * labels  # Hz, per row
        phase = rng.uniform(0, 2 * np.pi, (rows, 1, 3))
        angle = 2 * np.pi * frequency[:, None, None] * time[None, :, None] + phase
        signal = gain[:, None, None] * np.sin(angle)
        signal += NOISE * rng.standard_normal((rows, WINDOW, 3))
        columns[name] = signal.astype(np.float32)
    features = datasets.Features(
        {
            "acc": datasets.Array2D((WINDOW, 3), "float32"),
            "gyro": datasets.Array2D((WINDOW, 3), "float32"),
            "label": datasets.ClassLabel(names=list(CLASS_NAMES)),
            "subject": datasets.Value("int64"),
        }
    )
    columns.update(label=labels, subject=subjects)
    return datasets.Dataset.from_dict(columns, features=features)


def build_synthetic(out_dir: Path) -> None:
    """The embedded dataset: ``ROWS`` rows, seed 0, with ``save_to_disk``."""
    synthetic_dataset().save_to_disk(str(out_dir))


SYNTHETIC = replace(
    WATCH,  # its modalities, classes, encoder and sizes
    name="synthetic",
    build_embedded=build_synthetic,
    overlapping_windows=True,  # split each subject in order: see the module doc
)
