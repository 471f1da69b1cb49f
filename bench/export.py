"""Export figures of the default HAR model (watch, acc+gyro, attention fusion).

Trains the model on the embedded watch data (subjects 1-8; subjects 9 and 10 are
the test split, as a node's own test data would be), exports it as a node does
(``blossom_app.onnx.export.export_personalized`` with int8) and prints, in one
process: export time (first in the process and warm), file sizes, parity,
onnxruntime vs torch eager latency at batch 1 and 64, and the int8 accuracy
change. With ``--old-ort-python`` it also runs ``edge/run_model.py`` on both
files with that interpreter (e.g. a venv with ``onnxruntime==1.16.3`` and
``numpy<2``, the JetPack 5 release). With ``--compare-dynamo`` it also times the
dynamo exporter on the same model (the figure behind the exporter choice).

Usage::

    BLOSSOM_CACHE_DIR=/tmp/blossom-cache python bench/export.py \\
        [--epochs 5] [--threads 1] [--runs 200] [--out DIR] \\
        [--old-ort-python /tmp/ort116/bin/python] [--compare-dynamo]
"""

import argparse
import contextlib
import io
import shlex
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from blossom_app.benchmarks import get_task
from blossom_app.common.model import build_model
from blossom_app.common.training import TrainingSettings, evaluate, train
from blossom_app.data import Split, load_task_dataset
from blossom_app.data.columns import numpy_columns
from blossom_app.onnx.export import PositionalInputs, export_personalized
from blossom_app.onnx.model_card import ONNX_FILE, build_card
from blossom_app.onnx.quantize import INT8_FILE
from blossom_app.onnx.runtime import (
    onnx_session,
    ort_latency_ms,
    ort_logits,
    torch_latency_ms,
)

MODALITIES = ("acc", "gyro")
WATCH = get_task("watch")
FUSION = "attention"
TEST_SUBJECTS = (9, 10)
RUNNER = Path(__file__).resolve().parents[1] / "edge" / "run_model.py"


def subject_splits() -> tuple[Split, Split]:
    """Train on subjects 1-8, test on ``TEST_SUBJECTS`` (no overlapping windows)."""
    columns = numpy_columns(
        load_task_dataset(WATCH), [*MODALITIES, WATCH.label_column, "subject"]
    )
    test = np.isin(columns["subject"], TEST_SUBJECTS)
    return tuple(
        Split(
            {name: columns[name][mask].astype(np.float32) for name in MODALITIES},
            columns[WATCH.label_column][mask].astype(np.int64),
        )
        for mask in (~test, test)
    )


def trained_model(train_split: Split, epochs: int, seed: int = 0):
    """The default model trained with the app's SGD recipe, cosine over epochs."""
    model = build_model(WATCH, MODALITIES, FUSION, seed)
    settings = TrainingSettings(
        epochs=1, learning_rate=0.05, num_rounds=epochs, momentum=0.9, weight_decay=1e-5
    )
    for epoch in range(1, epochs + 1):
        train(
            model,
            train_split,
            settings,
            server_round=epoch,
            device=torch.device("cpu"),
            seed=seed + epoch,
        )
    return model.eval()


def dynamo_export_seconds(model, card) -> float:
    """Wall time of the dynamo exporter (opset 18, dynamic batch) on ``model``."""
    example = tuple(torch.zeros(2, *spec.shape[1:]) for spec in card.inputs)
    batch = torch.export.Dim("batch")
    start = time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # its progress lines and torch.export notes
        program = torch.onnx.export(
            PositionalInputs(model, {}).eval(),
            example,
            dynamo=True,
            opset_version=18,
            input_names=list(card.modalities),
            output_names=["logits"],
            dynamic_shapes=(tuple({0: batch} for _ in card.inputs),),  # one *inputs
        )
    with tempfile.TemporaryDirectory() as directory:
        program.save(str(Path(directory) / "dynamo.onnx"), external_data=False)
    return time.perf_counter() - start


def old_ort_check(python: str, out_dir: Path, test: Split) -> str:
    """Run the edge runner with ``python`` on both files; the commands and output."""
    for name in MODALITIES:
        np.save(out_dir / f"{name}.npy", test.inputs[name][:5])
    inputs = [f"--input={name}={out_dir / name}.npy" for name in MODALITIES]
    lines = []
    for model in (out_dir, out_dir / INT8_FILE):
        command = [python, str(RUNNER), str(model), "--runs=100", *inputs]
        result = subprocess.run(command, capture_output=True, text=True)
        lines.append(f"$ {shlex.join(command)}  # exit {result.returncode}")
        lines.append((result.stdout + result.stderr).strip())
    version = subprocess.run(
        [
            python,
            "-c",
            "import onnxruntime, numpy, sys; print("
            "'onnxruntime', onnxruntime.__version__, 'numpy', numpy.__version__, "
            "'python', sys.version.split()[0])",
        ],
        capture_output=True,
        text=True,
    )
    return "\n".join([version.stdout.strip(), *lines])


def latency_rows(model, session, int8, test: Split, runs: int) -> list[tuple]:
    """ort fp32 / torch eager / ort int8 median latency at batch 1 and 64."""
    rows = []
    for batch in (1, 64):
        inputs = {name: array[:batch] for name, array in test.inputs.items()}
        count = runs if batch == 1 else max(runs // 10, 10)
        ort_ms = ort_latency_ms(session, inputs, count)
        torch_ms = torch_latency_ms(
            PositionalInputs(model, {}).eval(), inputs, model.modalities, count
        )
        int8_ms = ort_latency_ms(int8, inputs, count)
        rows.append(
            (
                f"batch {batch} ms: ort / torch eager (torch/ort) / ort int8",
                f"{ort_ms:.3f} / {torch_ms:.3f} ({torch_ms / ort_ms:.1f}x) / "
                f"{int8_ms:.3f}",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--old-ort-python", default="")
    parser.add_argument("--compare-dynamo", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="blossom-export-"))

    train_split, test = subject_splits()
    start = time.perf_counter()
    model = trained_model(train_split, args.epochs)
    train_seconds = time.perf_counter() - start
    result = evaluate(
        model, test, batch_size=256, num_classes=7, device=torch.device("cpu")
    )
    card = build_card(
        WATCH,
        MODALITIES,
        fusion=FUSION,
        policy="local",
        run_index=0,
        server_round=args.epochs,
        test_accuracy=result.accuracy,
        test_macro_f1=result.macro_f1,
    )
    report = export_personalized(
        model, card, out_dir, test, WATCH, quantize=True, latency_runs=args.runs
    )
    warm = export_personalized(
        model, card, out_dir / "warm", test, WATCH, latency_runs=1
    )
    session = onnx_session(out_dir / ONNX_FILE, args.threads)
    int8 = onnx_session(out_dir / INT8_FILE, args.threads)
    fp32 = float(np.mean(ort_logits(session, test.inputs).argmax(1) == test.labels))
    delta = report.int8_accuracy_delta

    rows = [
        (f"train s ({args.epochs} epochs, {len(train_split)} windows)",
         f"{train_seconds:.1f}"),
        (f"test accuracy / macro-F1 (torch, {len(test)} windows)",
         f"{result.accuracy:.4f} / {result.macro_f1:.4f}"),
        ("export s (first in process / warm)",
         f"{report.export_seconds:.3f} / {warm.export_seconds:.3f}"),
        ("model.onnx bytes, opset, IR",
         f"{report.size_bytes:,}, {report.opset}, {report.ir_version}"),
        (f"parity max abs error ({report.parity_windows} windows)",
         f"{report.parity_max_abs_error:.2e}"),
        *latency_rows(model, session, int8, test, args.runs),
        ("model.int8.onnx bytes",
         f"{report.int8_size_bytes:,} ({report.int8_size_bytes / report.size_bytes:.0%}"
         " of fp32)"),
        ("accuracy ort fp32 -> int8",
         f"{fp32:.4f} -> {fp32 + delta:.4f} ({delta:+.4f})"),
        ("int8 max abs logit error", f"{report.int8_max_abs_error:.4f}"),
    ]  # fmt: skip
    if args.compare_dynamo:
        seconds = dynamo_export_seconds(model, card)
        rows.append(("dynamo exporter s (opset 18)", f"{seconds:.2f}"))

    print(f"torch {torch.__version__}, {args.threads} thread(s), files in {out_dir}\n")
    print("| figure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    if args.old_ort_python:
        print("\n" + old_ort_check(args.old_ort_python, out_dir, test))


if __name__ == "__main__":
    main()
