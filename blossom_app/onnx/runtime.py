"""Running an exported model in onnxruntime, and timing it against torch eager.

Used by the exporter (parity, latency) and by ``bench/export.py``.
"""

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from blossom_app.onnx.model_card import OUTPUT_NAME


def onnx_session(model: bytes | Path, threads: int) -> ort.InferenceSession:
    """A CPU onnxruntime session of an ONNX file or its bytes, ``threads`` threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(
        source, sess_options=options, providers=["CPUExecutionProvider"]
    )


def median_latency_ms(call: Callable[[], object], runs: int, warmup: int = 5) -> float:
    """Median wall time of ``call()`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def ort_latency_ms(
    session: ort.InferenceSession, inputs: dict[str, np.ndarray], runs: int
) -> float:
    """Median onnxruntime latency of one call on ``inputs`` (any batch size)."""
    return median_latency_ms(lambda: session.run(None, inputs), runs)


def torch_latency_ms(
    graph: nn.Module, inputs: dict[str, np.ndarray], order: tuple[str, ...], runs: int
) -> float:
    """Median torch eager latency of ``graph`` (on CPU, eval mode; it takes one
    tensor per input, in ``order``) on ``inputs``."""
    tensors = [torch.from_numpy(inputs[name]) for name in order]
    with torch.inference_mode():
        return median_latency_ms(lambda: graph(*tensors), runs)


def ort_logits(
    session: ort.InferenceSession, inputs: dict[str, np.ndarray], batch: int = 256
) -> np.ndarray:
    """``windows x classes`` logits of ``inputs``, run ``batch`` windows at a time."""
    count = len(next(iter(inputs.values())))
    return np.concatenate(
        [
            session.run(
                [OUTPUT_NAME],
                {name: array[i : i + batch] for name, array in inputs.items()},
            )[0]
            for i in range(0, count, batch)
        ]
    )
