"""Convert seglearn's smartwatch recordings into a windowed HF dataset.

seglearn 1.2.5 ships ``seglearn/data/watch_dataset.npy``: a pickled dict with
``X`` (140 recordings, each ``n_i x 6`` at 50 Hz: ax ay az wx wy wz), ``y``
(exercise 0..6, in ``y_labels`` order) and ``subject`` (1..10). The file is read
with numpy: importing seglearn would need pandas, which it does not declare.
"""

import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from blossom_app.errors import DataError

WINDOW = 128
STEP = 64
CLASS_NAMES = ("PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW")
SHA256 = "eb122f23cdf06ef6bd6c6c5312958ec5cf9d038e2e6d457b8081662c75a42537"

_INSTALL = "pip install seglearn==1.2.5"


def watch_file() -> Path:
    """Path of seglearn's ``watch_dataset.npy``, found without importing seglearn."""
    spec = importlib.util.find_spec("seglearn")
    locations = spec.submodule_search_locations if spec is not None else None
    for location in locations or ():
        path = Path(location) / "data" / "watch_dataset.npy"
        if path.is_file():
            return path
    raise DataError(
        "The embedded 'watch' dataset needs seglearn's data file "
        f"seglearn/data/watch_dataset.npy, which was not found. Install it: {_INSTALL}"
    )


def read_recordings(path: Path) -> dict:
    """Check the file's sha256; return its dict (``X``, ``y``, ``subject``, ...)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise DataError(
            f"{path} has sha256 {digest}, expected {SHA256} (seglearn 1.2.5). "
            f"Reinstall it: {_INSTALL} --force-reinstall"
        )
    return np.load(path, allow_pickle=True).item()


def window_recording(signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut one ``n x 6`` recording into windows of WINDOW samples every STEP.

    Returns ``(windows, starts)``: ``k x WINDOW x 6`` float32 and ``k`` start
    samples, with ``k = (n - WINDOW) // STEP + 1``.
    """
    windows = np.lib.stride_tricks.sliding_window_view(signal, WINDOW, axis=0)[::STEP]
    starts = np.arange(len(windows)) * STEP
    return windows.transpose(0, 2, 1).astype(np.float32), starts


def build_watch_dataset(out_dir: Path) -> None:
    """Write the windowed dataset to ``out_dir`` with ``save_to_disk``.

    One row per window: ``acc`` and ``gyro`` (``WINDOW x 3`` float32), ``label``
    (ClassLabel over CLASS_NAMES), ``subject``, ``recording`` (index into the
    file's recordings) and ``start`` (first sample of the window). 3,605 rows.
    """
    raw = read_recordings(watch_file())
    parts = [window_recording(np.asarray(signal)) for signal in raw["X"]]
    windows = np.concatenate([w for w, _ in parts])
    counts = [len(starts) for _, starts in parts]
    columns = {
        "acc": windows[..., :3],
        "gyro": windows[..., 3:],
        "label": np.repeat(raw["y"], counts),
        "subject": np.repeat(raw["subject"], counts),
        "recording": np.repeat(np.arange(len(counts)), counts),
        "start": np.concatenate([starts for _, starts in parts]),
    }
    import datasets  # only when the dataset is built, not when the task is named

    features = datasets.Features(
        {
            "acc": datasets.Array2D((WINDOW, 3), "float32"),
            "gyro": datasets.Array2D((WINDOW, 3), "float32"),
            "label": datasets.ClassLabel(names=list(CLASS_NAMES)),
            "subject": datasets.Value("int64"),
            "recording": datasets.Value("int64"),
            "start": datasets.Value("int64"),
        }
    )
    datasets.Dataset.from_dict(columns, features=features).save_to_disk(str(out_dir))
