"""The model card (``model.json``): what a device needs to feed an exported model.

The card is built from the same ``Task`` and ``ModalitySpec`` objects that build
the model, so input names and shapes cannot drift from the network. It is plain
JSON: the torch-free edge runner (``edge/run_model.py``) reads it with the
standard library alone.
"""

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from blossom_app.atomic_files import write_text_atomically
from blossom_app.benchmarks.task import Task

#: Bumped whenever a field changes meaning or is removed (adding one is compatible).
SCHEMA_VERSION = 1
CARD_FILE = "model.json"
ONNX_FILE = "model.onnx"
OUTPUT_NAME = "logits"
BATCH_AXIS = "batch"

#: Per-example rank -> the meaning of each axis, batch first (DECISIONS 11).
LAYOUTS: dict[int, str] = {
    1: "batch x features",
    2: "batch x time x channels",
    3: "batch x channels x height x width",
}


@dataclass(frozen=True)
class InputSpec:
    """One ONNX input: named after its modality, ``shape`` batch first.

    ``shape`` is e.g. ``("batch", 128, 3)``: the batch axis is symbolic, the
    others fixed. ``preprocessing`` says what the values must be before they
    are fed (the model computes everything after that). ``front_end``: what
    the model computes from them first, inside the ONNX graph (a log-mel
    spectrogram from samples, scaling and standardization of pixels), or
    ``None`` when the model takes the features themselves
    (``benchmarks/front_end.py``). ``normalization``: the per-channel
    ``mean`` and ``std`` the model standardizes its features with (inside the
    model, from the client's own training data; a device feeds raw values).
    """

    name: str
    shape: tuple[str | int, ...]
    layout: str
    preprocessing: str
    dtype: str = "float32"
    normalization: dict[str, list[float]] | None = None
    front_end: str | None = None


@dataclass(frozen=True)
class ModelCard:
    """A personalized model's identity, inputs, output and test metrics.

    ``opset`` and ``ir_version`` are ``None`` until the model is exported
    (``blossom_app.onnx.export`` fills them in when it writes the card).
    """

    dataset: str
    inputs: tuple[InputSpec, ...]
    class_names: tuple[str, ...]
    policy: str
    fusion: str
    run_index: int
    server_round: int
    test_accuracy: float
    test_macro_f1: float
    onnx_file: str = ONNX_FILE
    output: str = OUTPUT_NAME
    opset: int | None = None
    ir_version: int | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    def exported(self, *, opset: int, ir_version: int) -> "ModelCard":
        """This card with the ONNX file's opset and IR version filled in."""
        return replace(self, opset=opset, ir_version=ir_version)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        """Parse a card; refuse another schema version, ignore unknown fields."""
        data = json.loads(text)
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"Model card schema version {version!r} is not supported (this "
                f"code reads version {SCHEMA_VERSION}). Re-export the model with "
                "this version of blossom-app, or upgrade blossom-app."
            )
        inputs = tuple(
            InputSpec(**{**_known(InputSpec, spec), "shape": tuple(spec["shape"])})
            for spec in data["inputs"]
        )
        return cls(
            **{
                **_known(cls, data),
                "inputs": inputs,
                "class_names": tuple(data["class_names"]),
            }
        )

    def save(self, path: Path) -> None:
        write_text_atomically(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> "ModelCard":
        return cls.from_json(path.read_text(encoding="utf-8"))


def _known(cls: type, data: dict) -> dict:
    """The entries of ``data`` that are fields of dataclass ``cls``."""
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in names}


def build_card(
    task: Task,
    modalities: tuple[str, ...],
    *,
    fusion: str,
    policy: str,
    run_index: int,
    server_round: int,
    test_accuracy: float,
    test_macro_f1: float,
    normalization: dict[str, dict[str, list[float]]] | None = None,
) -> ModelCard:
    """The card of a model of ``task`` holding ``modalities`` (any order).

    ``test_accuracy`` and ``test_macro_f1`` are the personalized model's final
    figures on the node's own test split; ``policy`` is the aggregation policy
    it was trained under; ``normalization``: per modality, the statistics the
    model standardizes its input with (``MultimodalModel.normalization``).
    """
    normalization = normalization or {}
    return ModelCard(
        dataset=task.name,
        inputs=tuple(
            replace(_input_spec(task, name), normalization=normalization.get(name))
            for name in sorted(modalities)
        ),
        class_names=task.class_names,
        policy=policy,
        fusion=fusion,
        run_index=run_index,
        server_round=server_round,
        test_accuracy=test_accuracy,
        test_macro_f1=test_macro_f1,
    )


def _input_spec(task: Task, modality: str) -> InputSpec:
    spec = task.modality(modality)
    if spec.front_end is not None:
        device = spec.front_end.device_input()
        return InputSpec(
            name=spec.name,
            shape=(BATCH_AXIS, *device.shape),
            layout=device.layout,
            preprocessing=device.description,
            front_end=spec.preprocessing,
        )
    if len(spec.shape) not in LAYOUTS:
        raise ValueError(
            f"Modality '{modality}' of task '{task.name}' has per-example shape "
            f"{spec.shape}; the model card knows layouts for ranks "
            f"{sorted(LAYOUTS)} only. Add its layout to model_card.LAYOUTS."
        )
    return InputSpec(
        name=spec.name,
        shape=(BATCH_AXIS, *spec.shape),
        layout=LAYOUTS[len(spec.shape)],
        preprocessing=spec.preprocessing
        or f"none: raw values as stored in the dataset column '{spec.column}'",
    )
