"""Small datasets in a benchmark's schema: real values of the right kinds,
shapes and dtypes, a few dozen rows, as the hub would serve them (no network):
arrays for sensor columns, WAV clips in Audio columns, strings for text,
PNG images in Image columns, labels as the task's dataset stores them."""

import io
import wave
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from blossom_app.benchmarks import Task
from blossom_app.benchmarks.audio import LogMel
from blossom_app.benchmarks.image import ImagePixels
from blossom_app.benchmarks.text import HashedTokens, MobileBertEmbeddings

WORDS = ("oh", "my", "god", "you", "are", "kidding", "me", "i", "know", "ross")


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """``samples`` in [-1, 1] as a 16-bit mono WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(rate)
        clip.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def _values(features: object, shape: tuple, count: int, rng) -> list:
    if features is None:
        return rng.standard_normal((count, *shape), dtype=np.float32).tolist()
    if isinstance(features, LogMel):  # tones of a random pitch, 0.3-1.2 s
        clips = []
        for _ in range(count):
            rate = int(rng.choice([8000, 16000]))
            t = np.arange(int(rate * rng.uniform(0.3, 1.2))) / rate
            tone = 0.5 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t)
            clips.append({"bytes": wav_bytes(tone, rate), "path": None})
        return clips
    if isinstance(features, HashedTokens | MobileBertEmbeddings):
        return [
            " ".join(rng.choice(WORDS, size=rng.integers(2, 12))) for _ in range(count)
        ]
    if isinstance(features, ImagePixels):
        pixels = rng.integers(0, 256, (count, features.height, features.width))
        return [Image.fromarray(p.astype(np.uint8)) for p in pixels]
    raise TypeError(f"no example values for {features!r}")


#: A label no class of a label-mapped task takes: the loader leaves its row out.
OTHER_LABEL = "other-label"


def _labels(task: Task, count: int, names: bool) -> list:
    """Class ids; for a task with a label map, the values it reads: names (and
    ``OTHER_LABEL`` in the first row) or its ids."""
    classes = np.arange(count) % task.num_classes
    if task.label_map is None:
        return classes.tolist()
    raw: dict[int, str | int] = {}
    for key, index in task.label_map.items():
        if isinstance(key, str) == names:
            raw.setdefault(index, key)
    labels = [raw[int(c)] for c in classes]
    if names:
        labels[0] = OTHER_LABEL
    return labels


def rows(
    task: Task, count: int, groups: int = 3, seed: int = 0, names: bool = True
) -> dict[str, list]:
    """``count`` rows: every modality column, the label (as names where the
    task maps names, with ``names``), the group column."""
    rng = np.random.default_rng(seed)
    data = {
        spec.column: _values(spec.features, spec.shape, count, rng)
        for spec in task.modalities
    }
    data[task.label_column] = _labels(task, count, names)
    if task.group_column:
        ids = np.arange(count) * groups // count  # consecutive rows per group
        data[task.group_column] = [
            f"site-{i}" if task.group_column != "subject" else int(i) for i in ids
        ]
    return data


def write(
    task: Task,
    path: Path,
    count: int,
    fmt: str = "parquet",
    names: bool = True,
    **edits,
) -> Path:
    """Write such a dataset to ``path`` (a parquet file, or a ``save_to_disk``
    directory with ``fmt="disk"``); ``edits`` replace or (None) drop columns.
    Audio columns are typed ``Audio`` (written from their bytes) and images
    ``Image``, as on the hub (an edited column keeps the type of its values)."""
    data = rows(task, count, names=names)
    for column, value in edits.items():
        if value is None:
            del data[column]
        else:
            data[column] = value
    audio = [
        spec.column
        for spec in task.modalities
        if isinstance(spec.features, LogMel) and spec.column not in edits
    ]
    dataset = datasets.Dataset.from_dict(data)
    for column in audio:  # bytes in, typed after: no audio encoder needed
        dataset = dataset.cast_column(column, datasets.Audio())
    if fmt == "disk":
        dataset.save_to_disk(str(path))
    else:
        dataset.to_parquet(str(path))
    return path
