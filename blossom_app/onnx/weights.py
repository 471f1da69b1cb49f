"""``model.pt``: a personalized model's torch weights, with what rebuilds it
(task, modalities, fusion, card), read back for ``blossom export``."""

from pathlib import Path

import torch

from blossom_app.atomic_files import atomic_open
from blossom_app.benchmarks import Task, get_task
from blossom_app.common.model import MultimodalModel, build_model
from blossom_app.onnx.model_card import ModelCard

WEIGHTS_FILE = "model.pt"
WEIGHTS_FORMAT = 2  # 2: the state dict holds the input normalizers


def save_weights(model: MultimodalModel, card: ModelCard, path: Path) -> None:
    """Write ``model.pt``: task, modalities, fusion, card and state dict.

    Plain types and tensors only, so ``torch.load(path, weights_only=True)``
    reads it.
    """
    saved = {
        "format": WEIGHTS_FORMAT,
        "task": card.dataset,
        "modalities": list(model.modalities),
        "fusion": card.fusion,
        "card": card.to_json(),
        "state_dict": {
            key: value.detach().cpu() for key, value in model.state_dict().items()
        },
    }
    with atomic_open(path) as handle:
        torch.save(saved, handle)


def load_weights(path: Path) -> tuple[MultimodalModel, ModelCard, Task]:
    """Rebuild the model (eval mode, CPU), its card and task from a ``model.pt``."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("format") != WEIGHTS_FORMAT:
        raise ValueError(
            f"{path} has model.pt format {saved.get('format')!r}; this version of "
            f"blossom-app reads format {WEIGHTS_FORMAT}. Export it again with the "
            "version that trained it."
        )
    task = get_task(saved["task"])
    model = build_model(task, tuple(saved["modalities"]), saved["fusion"], seed=0)
    model.load_state_dict(saved["state_dict"])
    return model.eval(), ModelCard.from_json(saved["card"]), task
