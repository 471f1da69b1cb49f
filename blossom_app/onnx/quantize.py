"""``model.int8.onnx``: dynamic 8-bit quantization of an exported model,
leaving its front ends in float."""

import logging
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

from blossom_app.atomic_files import atomic_path

INT8_FILE = "model.int8.onnx"
#: The exported graph's nodes of the model itself are named ``/model/...``
#: (``export.PositionalInputs.model``); the others are its front ends.
MODEL_SCOPE = "/model/"
#: Op types dynamic quantization rewrites, with uint8 weights: onnxruntime 1.16
#: has no ConvInteger kernel for int8 weights, and uint8 also avoids the u8s8
#: saturation of x86 AVX2. The GRU has no dynamic quantizer: it keeps float
#: weights (about half of a HAR model's bytes).
QUANTIZE_OPS = ("Conv", "MatMul", "Gemm")


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic 8-bit quantization of ``QUANTIZE_OPS`` (weights stored as uint8,
    activations quantized at run time) outside the front ends; the rest keeps
    float weights. ``target`` is written atomically."""
    root = logging.getLogger()
    root.addFilter(_without_preprocessing_hint)
    model = onnx.load(source)
    front_end_nodes = [
        node.name for node in model.graph.node if not node.name.startswith(MODEL_SCOPE)
    ]
    try:
        with atomic_path(target) as scratch:
            quantize_dynamic(
                source,
                scratch,
                op_types_to_quantize=list(QUANTIZE_OPS),
                nodes_to_exclude=front_end_nodes,
                weight_type=QuantType.QUInt8,
            )
    finally:
        root.removeFilter(_without_preprocessing_hint)


def _without_preprocessing_hint(record: logging.LogRecord) -> bool:
    """Drop the quantizer's advice to pre-process first: measured on the watch
    model, pre-processing changed neither the size nor the accuracy."""
    return not record.getMessage().startswith("Please consider to run pre-processing")
