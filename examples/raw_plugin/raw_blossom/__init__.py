"""raw_blossom: a BLOSSOM dataset plug-in whose audio and images are raw
arrays (docs/datasets.md, "Audio and images stored as arrays").

Each row holds ``audio``, 8,000 float samples of a 1 s clip at 8 kHz (a tone
whose pitch is the class), ``image``, the 64 floats in [0, 1] of an 8 x 8 gray
picture (a bar whose place is the class), the ``label`` (0-3) and the
``speaker`` (the natural partition). ``build(path)`` writes such a dataset as
parquet. The features are a plain function over ``LogMel`` (the samples carry
no rate: ``sample_rate`` declares it) and ``ImagePixels`` reading flat arrays
(``stored`` declares their 8 x 8 shape, ``pixel_max`` their [0, 1] scale).
Both are front ends: an exported model takes the samples and the pixels and
computes the rest itself, so a device without torch feeds what it records
(the plain function names its front end, ``front_end=LOG_MEL``).
Its default preset, ``arrays`` (AdamW), is the recipe it runs with unless the
run config names another.
"""

from pathlib import Path

import numpy as np

from blossom_app.benchmarks import ModalitySpec, Task
from blossom_app.benchmarks.audio import LogMel, spectrogram_encoder
from blossom_app.benchmarks.image import ImagePixels, image_encoder
from blossom_app.benchmarks.task import EncoderByModality

RATE, SIDE, CLASSES = 8000, 8, 4

LOG_MEL = LogMel(
    n_mels=16, frames=26, seconds=1.0, window_s=0.064, hop_s=0.04, as_image=True,
    sample_rate=RATE,
)  # fmt: skip
PIXELS = ImagePixels(1, SIDE, SIDE, (0.2,), (0.4,), stored=(SIDE, SIDE), pixel_max=1.0)


def audio_features(samples: list[float]) -> np.ndarray:
    """A clip's log-mel spectrogram, ``1 x 16 x 26`` (a plain function)."""
    return LOG_MEL(samples)


def build(path: Path, rows: int = 240, speakers: int = 6, seed: int = 0) -> Path:
    """Write ``rows`` examples to the parquet file ``path``."""
    import datasets

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, rows)
    time = np.arange(RATE) / RATE
    audio = [
        (0.5 * np.sin(2 * np.pi * 300 * (1 + label) * time)
         + 0.1 * rng.standard_normal(RATE)).astype(np.float32).tolist()
        for label in labels
    ]  # fmt: skip
    images = []
    for label in labels:
        picture = 0.1 * rng.random((SIDE, SIDE))
        picture[:, 2 * label : 2 * label + 2] = 1.0
        images.append(picture.astype(np.float32).ravel().tolist())
    data = {
        "audio": audio,
        "image": images,
        "label": labels.tolist(),
        "speaker": (np.arange(rows) % speakers).tolist(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(data).to_parquet(str(path))
    return path


TASK = Task(
    name="raw",
    modalities=(
        ModalitySpec(
            "audio",
            LOG_MEL.shape,
            features=audio_features,
            preprocessing=LOG_MEL.description,
            embed_dim=16,
            front_end=LOG_MEL,  # what audio_features computes, in the ONNX graph
        ),
        ModalitySpec(
            "image",
            PIXELS.shape,
            features=PIXELS,
            preprocessing=PIXELS.description,
            embed_dim=16,
        ),
    ),
    class_names=("low", "mid", "high", "top"),
    encoder=EncoderByModality(
        (("audio", spectrogram_encoder), ("image", image_encoder))
    ),
    embed_dim=16,
    fusion_dim=16,
    head_hidden=16,
    source="raw.parquet",  # overridden with data-source
    group_column="speaker",
    presets=Path(__file__).parent / "presets",
    default_preset="arrays",  # AdamW: the app's SGD recipe stays at chance here
)
