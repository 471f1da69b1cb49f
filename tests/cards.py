"""A model card for test models (fixed run facts, made-up metrics)."""

from blossom_app.benchmarks import Task, get_task
from blossom_app.common.model import MultimodalModel
from blossom_app.onnx.model_card import ModelCard, build_card


def card_for(
    model: MultimodalModel, fusion: str, dataset: str | Task = "watch"
) -> ModelCard:
    return build_card(
        get_task(dataset) if isinstance(dataset, str) else dataset,
        model.modalities,
        fusion=fusion,
        policy="private-head-fusion",
        run_index=1,
        server_round=3,
        test_accuracy=0.5,
        test_macro_f1=0.25,
        normalization=model.normalization(),
    )
