"""toy_blossom: a BLOSSOM dataset plug-in, start to finish (docs/datasets.md).

Two modalities, ``left`` and ``right`` (8 time steps x 2 channels each), two
classes, a subject per row. ``build(path)`` writes a small dataset of that
schema as parquet; ``TASK`` tells BLOSSOM how to read it and which network
serves each block. The package registers ``TASK`` under the entry point group
``blossom.benchmarks`` (see ``pyproject.toml``), so ``dataset = "toy"`` finds it;
``dataset = "toy_blossom:TASK"`` works without registering. Its own settings
come as presets, files in ``presets/`` (``preset = "quick"``), not as new
run-config keys; ``default_preset`` makes ``quick`` the recipe a run of ``toy``
takes when it names no preset (keys the user sets still win).
"""

from pathlib import Path

import numpy as np
from torch import nn

from blossom_app.benchmarks import ModalitySpec, Task

STEPS, CHANNELS = 8, 2


def encoder(spec: ModalitySpec) -> nn.Module:
    """One modality's encoder: its window, flattened, to 16 features."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(int(np.prod(spec.shape)), 16), nn.ReLU()
    )


def build(path: Path, rows: int = 240, seed: int = 0) -> Path:
    """Write ``rows`` examples to the parquet file ``path``: the class shifts
    the mean of both modalities, so it can be learned from either."""
    import datasets

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, rows)
    shift = (2 * labels - 1)[:, None, None].astype(np.float32)
    shape = (rows, STEPS, CHANNELS)
    data = {
        "left": (rng.standard_normal(shape, dtype=np.float32) + shift).tolist(),
        "right": (rng.standard_normal(shape, dtype=np.float32) - shift).tolist(),
        "label": labels.tolist(),
        "subject": (np.arange(rows) % 6).tolist(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(data).to_parquet(str(path))
    return path


TASK = Task(
    name="toy",
    modalities=(
        ModalitySpec("left", (STEPS, CHANNELS)),
        ModalitySpec("right", (STEPS, CHANNELS)),
    ),
    class_names=("low", "high"),
    encoder=encoder,
    embed_dim=16,
    fusion_dim=16,
    head_hidden=8,
    source="toy.parquet",  # overridden with data-source
    group_column="subject",
    presets=Path(__file__).parent / "presets",
    default_preset="quick",  # what a run of `toy` takes unless it names a preset
)
