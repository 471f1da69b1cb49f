"""Personalized model -> ONNX on the node, checked against torch with onnxruntime.

``export_personalized`` writes, into one directory:

- ``model.onnx``: one self-contained file (no ``.onnx.data`` side file), one input
  per modality named after it (``batch x *shape``, float32, sorted order; for a
  modality with a front end, what the device records: the front end is part of
  the graph, see ``benchmarks/front_end.py``), output
  ``logits`` (``batch x classes``), a dynamic batch axis, opset 17 and IR version
  <= 9 so that onnxruntime 1.16 (JetPack 5) loads it as well as current releases;
- ``model.json``: the model card (``blossom_app.onnx.model_card``);
- ``model.pt``: the torch weights and what rebuilds the model (``weights.py``);
- ``model.int8.onnx`` when asked: the same model with 8-bit weights in its
  Conv/MatMul/Gemm ops (``quantize.py``; the GRU and the front ends stay float);

and returns an ``ExportReport`` of metadata only (never arrays: the files hold
private blocks and stay on the node).

Exporter: the TorchScript exporter (``dynamo=False``, opset 17). Measured on the
watch acc+gyro HAR model with one thread (torch 2.14.1): 0.08-0.17 s per export
(0.36 s at most for the first in a process) against 9-21 s for the dynamo
exporter (opset 18, which also writes IR 10, needing a downgrade for
onnxruntime 1.16, and source paths in node metadata); parity 1.5e-8 with both.
It runs on every node at the end of every run and in the tests, so speed
decides. It is deprecated since torch 2.9: ``_to_onnx`` is the one place that
names it, and the parity check stops a wrong export from being written.
"""

import copy
import hashlib
import io
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from blossom_app.atomic_files import atomic_open
from blossom_app.benchmarks import Task
from blossom_app.benchmarks.front_end import FrontEnd
from blossom_app.common.model import MultimodalModel
from blossom_app.data import Split
from blossom_app.onnx.model_card import BATCH_AXIS, CARD_FILE, OUTPUT_NAME, ModelCard
from blossom_app.onnx.quantize import INT8_FILE, quantize_int8
from blossom_app.onnx.runtime import (
    onnx_session,
    ort_latency_ms,
    ort_logits,
    torch_latency_ms,
)
from blossom_app.onnx.weights import WEIGHTS_FILE, load_weights, save_weights

OPSET = 17
MAX_IR_VERSION = 9
#: Test windows compared between onnxruntime and torch eager.
PARITY_WINDOWS = 64
#: Largest acceptable |logit difference| between the ONNX file and torch eager.
PARITY_TOLERANCE = 1e-4
#: Windows of the deterministic random batch ``reexport`` checks parity on.
PROBE_WINDOWS = 8


class ExportError(RuntimeError):
    """An exported model does not compute what the torch model computes."""


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how the file behaves (no arrays).

    Latencies are medians at batch 1 over ``latency_runs`` runs in one process,
    onnxruntime and torch eager with ``latency_threads`` threads each. The
    ``int8_*`` fields are ``None`` without quantization, and
    ``int8_accuracy_delta`` (int8 minus fp32 accuracy on the test split, both
    in onnxruntime) is ``None`` when there are no labels (``reexport``) or
    the model has a front end (its test split holds features, not recordings).
    ``front_end_max_abs_error``: the largest difference between the exported
    front ends and the training features on their probes (``None`` without).
    """

    onnx_file: str
    size_bytes: int
    sha256: str
    opset: int
    ir_version: int
    export_seconds: float
    parity_windows: int
    parity_max_abs_error: float
    latency_threads: int
    latency_runs: int
    ort_latency_ms: float
    torch_latency_ms: float
    front_end_max_abs_error: float | None = None
    int8_file: str | None = None
    int8_size_bytes: int | None = None
    int8_max_abs_error: float | None = None
    int8_accuracy_delta: float | None = None

    def to_record(self) -> dict[str, str | int | float]:
        """Flat ``{key: value}`` for a ConfigRecord reply or a CSV row.

        Keys are the field names with dashes (``size-bytes``); ``None`` fields
        are left out.
        """
        return {
            name.replace("_", "-"): value
            for name, value in asdict(self).items()
            if value is not None
        }


class PositionalInputs(nn.Module):
    """``model`` called with one tensor per modality, in sorted order, each
    through its front end first where it has one.

    ONNX inputs are positional; this names them after the modalities.
    """

    def __init__(self, model: MultimodalModel, front_ends: dict[str, FrontEnd]) -> None:
        super().__init__()
        self.model = model
        self.front_ends = nn.ModuleDict(
            {name: front_end.module() for name, front_end in front_ends.items()}
        )

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        named = dict(zip(self.model.modalities, inputs, strict=True))
        return self.model(
            {
                name: self.front_ends[name](x) if name in self.front_ends else x
                for name, x in named.items()
            }
        )


def front_ends(task: Task, modalities: tuple[str, ...]) -> dict[str, FrontEnd]:
    """The front ends of those ``modalities`` of ``task`` that have one."""
    return {
        name: spec.front_end
        for name in modalities
        if (spec := task.modality(name)).front_end is not None
    }


def export_personalized(
    model: MultimodalModel,
    card: ModelCard,
    out_dir: Path,
    test_split: Split,
    task: Task,
    *,
    quantize: bool = False,
    latency_runs: int = 50,
) -> ExportReport:
    """Export a node's personalized ``model`` of ``task`` into ``out_dir``;
    see the module doc.

    Parity is checked on the first ``PARITY_WINDOWS`` windows of ``test_split``
    (the node's own test data; a modality with a front end is fed its probes,
    see ``_parity_inputs``); the int8 accuracy change on all of it. The model
    itself is left as it is (a CPU copy is exported).

    Raises
    ------
    ExportError
        If the ONNX model's logits differ from torch's by more than
        ``PARITY_TOLERANCE``, or a front end's output from the training
        features by more than its tolerance; nothing is written then.
    """
    return _export(
        model,
        card,
        out_dir,
        front_ends(task, model.modalities),
        test_split.inputs,
        test_split.labels,
        quantize=quantize,
        latency_runs=latency_runs,
    )


def reexport(
    model_pt: Path,
    out_dir: Path | None = None,
    quantize: bool = False,
    *,
    latency_runs: int = 50,
) -> ExportReport:
    """Rebuild the model saved in ``model_pt`` and export it again.

    Files go next to ``model_pt`` unless ``out_dir`` is given. With no test
    split at hand, parity is checked on ``probe_inputs(card)``: a fixed random
    batch of the card's shapes (so the figure is reproducible), and
    ``int8_accuracy_delta`` is not reported.
    """
    model, card, task = load_weights(model_pt)
    return _export(
        model,
        card,
        model_pt.parent if out_dir is None else out_dir,
        front_ends(task, model.modalities),
        probe_inputs(card),
        None,
        quantize=quantize,
        latency_runs=latency_runs,
    )


def probe_inputs(card: ModelCard) -> dict[str, np.ndarray]:
    """``PROBE_WINDOWS`` standard-normal windows per input, seeded (seed 0)."""
    rng = np.random.default_rng(0)
    return {
        spec.name: rng.standard_normal(
            (PROBE_WINDOWS, *spec.shape[1:]), dtype=np.float32
        )
        for spec in card.inputs
    }


def _export(
    model: MultimodalModel,
    card: ModelCard,
    out_dir: Path,
    front: dict[str, FrontEnd],
    inputs: dict[str, np.ndarray],
    labels: np.ndarray | None,
    *,
    quantize: bool,
    latency_runs: int,
) -> ExportReport:
    """Export, check parity, write the files, time both runtimes, quantize."""
    if card.modalities != model.modalities:
        raise ValueError(
            f"The card lists inputs {card.modalities} but the model holds "
            f"modalities {model.modalities}. Build the card with the model's "
            "modalities (model_card.build_card)."
        )
    graph = PositionalInputs(copy.deepcopy(model).cpu(), front).eval()
    start = time.perf_counter()
    proto = _to_onnx(graph, card)
    export_seconds = time.perf_counter() - start
    data = proto.SerializeToString()
    threads = torch.get_num_threads()
    session = onnx_session(data, threads)
    parity, front_end_error = _parity_inputs(graph, front, inputs)
    with torch.inference_mode():
        expected = graph(*(torch.from_numpy(parity[n]) for n in card.modalities))
    expected = expected.numpy()
    error = float(np.abs(ort_logits(session, parity) - expected).max())
    if error > PARITY_TOLERANCE:
        raise ExportError(
            f"The ONNX model's logits differ from torch's by up to {error:.3g} "
            f"(tolerance {PARITY_TOLERANCE:g}) on {len(expected)} test windows; "
            "nothing was written. A module in the model does not export "
            "faithfully with the TorchScript exporter at opset "
            f"{OPSET}; check its forward for data-dependent Python control flow."
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / card.onnx_file
    with atomic_open(onnx_path) as handle:
        handle.write(data)
    exported = card.exported(opset=OPSET, ir_version=proto.ir_version)
    exported.save(out_dir / CARD_FILE)
    save_weights(graph.model, exported, out_dir / WEIGHTS_FILE)
    one = {name: array[:1] for name, array in parity.items()}
    report = ExportReport(
        onnx_file=onnx_path.name,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        opset=OPSET,
        ir_version=proto.ir_version,
        export_seconds=export_seconds,
        parity_windows=len(expected),
        parity_max_abs_error=error,
        latency_threads=threads,
        latency_runs=latency_runs,
        ort_latency_ms=ort_latency_ms(session, one, latency_runs),
        torch_latency_ms=torch_latency_ms(graph, one, card.modalities, latency_runs),
        front_end_max_abs_error=front_end_error,
    )

    int8_path = out_dir / INT8_FILE
    if not quantize:
        int8_path.unlink(missing_ok=True)  # from an earlier export
        return report
    quantize_int8(onnx_path, int8_path)
    int8 = onnx_session(int8_path, threads)
    return replace(
        report,
        int8_file=int8_path.name,
        int8_size_bytes=int8_path.stat().st_size,
        int8_max_abs_error=float(np.abs(ort_logits(int8, parity) - expected).max()),
        int8_accuracy_delta=None
        if labels is None or front
        else _accuracy(int8, inputs, labels) - _accuracy(session, inputs, labels),
    )


def _parity_inputs(
    graph: PositionalInputs, front: dict[str, FrontEnd], inputs: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], float | None]:
    """The windows parity is checked on, as the exported model takes them, and
    the front ends' largest difference from the training features (None
    without front ends).

    The first ``PARITY_WINDOWS`` windows of ``inputs``; a modality with a
    front end gets as many of its probes instead (recordings, seeded: the
    inputs hold features), and its module's output on them is compared with
    the training features of each probe.

    Raises
    ------
    ExportError
        If a front end differs from its features by more than its tolerance.
    """
    count = min(PARITY_WINDOWS, len(next(iter(inputs.values()))))
    parity = {name: array[:count] for name, array in inputs.items()}
    worst = None
    for name, front_end in front.items():
        raw = front_end.probe(count, np.random.default_rng(0))
        features = np.stack([front_end(front_end.as_stored(one)) for one in raw])
        with torch.inference_mode():
            computed = graph.front_ends[name](torch.from_numpy(raw)).numpy()
        error = float(np.abs(computed - features).max())
        tolerance = front_end.device_input().tolerance
        if error > tolerance:
            raise ExportError(
                f"The front end of '{name}' differs from its training features by "
                f"up to {error:.3g} (tolerance {tolerance:g}) on {count} probes; "
                "nothing was written."
            )
        parity[name] = raw
        worst = max(error, worst or 0.0)
    return parity, worst


def _accuracy(
    session: ort.InferenceSession, inputs: dict[str, np.ndarray], labels: np.ndarray
) -> float:
    return float(np.mean(ort_logits(session, inputs).argmax(axis=1) == labels))


def _to_onnx(graph: "PositionalInputs", card: ModelCard) -> onnx.ModelProto:
    """Trace ``graph`` into an ONNX model (in memory) with the card's inputs."""
    example = tuple(torch.zeros(2, *spec.shape[1:]) for spec in card.inputs)
    names = [*card.modalities, OUTPUT_NAME]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Known and harmless here: the deprecation notice of this exporter, the
        # GRU's Python-side shape checks seen by the tracer, and a GRU notice
        # about batch sizes (parity is checked at batch 1 and more in tests).
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript")
        warnings.filterwarnings("ignore", "The feature will be removed")
        warnings.filterwarnings(
            "ignore",
            category=torch.jit.TracerWarning,
            module=r"torch\.nn\.modules\.rnn",
        )
        warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size")
        # A front end's reflect padding reverses a slice, which stays unfolded.
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1")
        torch.onnx.export(
            graph,  # in eval mode: a new module is in training mode (dropout on)
            example,
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=list(card.modalities),
            output_names=[OUTPUT_NAME],
            dynamic_axes={name: {0: BATCH_AXIS} for name in names},
        )
    proto = onnx.load_from_string(buffer.getvalue())
    proto.ir_version = min(proto.ir_version, MAX_IR_VERSION)
    _strip_doc_strings(proto)
    onnx.checker.check_model(proto)
    return proto


def _strip_doc_strings(proto: onnx.ModelProto) -> None:
    """Drop doc strings and node metadata: exporters put local source paths there."""
    proto.doc_string = proto.graph.doc_string = ""
    for node in proto.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
