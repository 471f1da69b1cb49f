"""Run an exported BLOSSOM model with onnxruntime and numpy alone (no torch).

Usage::

    python edge/run_model.py MODEL --input NAME=FILE [--input NAME=FILE ...]
                             [--runs 100] [--batch-size 1]

``MODEL`` is an export directory (``model.onnx`` + ``model.json``) or an
``.onnx`` file with its ``model.json`` beside it (e.g. ``model.int8.onnx``).
Give one ``--input`` per input the card (``model.json``) lists, named as there.

An input file holds examples ("windows") of one input, with the values the
card's ``preprocessing`` asks for, in the ``layout`` and ``shape`` it declares
(batch first). The layouts, by the kind of modality:

- sensor windows: ``batch x time x channels`` (``watch``: raw sensor values);
- audio, when the model computes its log-mel front end itself (the card's
  ``front_end``): ``batch x samples`` at the card's sampling rate;
  otherwise ``batch x 1 x mels x frames`` spectrograms computed before;
- images: ``batch x height x width [x channels]`` pixels as stored when the
  model scales and standardizes them itself (``front_end``), otherwise
  ``batch x channels x height x width``;
- other feature vectors: ``batch x features``.

- ``.npy``: an array of any layout the card declares, ``batch x ...``, or one
  example without the batch axis;
- ``.csv`` (no header, comma-separated), for examples of one or two axes: with
  two (``time x channels``, ``height x width``), one row per time step or pixel
  row, a blank line ending an example (a file without blank lines is one);
  with one (``samples``, ``features``), one example per row.

Every input must hold the same number of examples. The runner prints one line per
window (its index, the predicted class name and its probability), then the
latency percentiles (p50/p90/p99, ms) of one call on a batch of ``--batch-size``
windows over ``--runs`` runs after a warm-up. On bad input it exits with status 2
and a message that names the inputs and shapes the model expects.

Needs Python >= 3.8, numpy (1.x or 2.x) and onnxruntime >= 1.16.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

CARD_FILE = "model.json"
CARD_SCHEMA_VERSION = 1
WHAT_TO_PASS = (
    "Give the model folder the SuperNode wrote: its node config's export-dir "
    "(default <state-dir>/models) followed by partition-<partition-id>-<modalities>, "
    "e.g. /var/lib/blossom/models/partition-0-acc, or an .onnx file inside that "
    "folder (model.onnx, model.int8.onnx)."
)
WARMUP_RUNS = 10


class InputError(Exception):
    """The model, its card or an input file is not what the runner needs."""


def load_model(path: Path) -> tuple[Path, dict]:
    """The ONNX file and the card (``model.json``) of ``path`` (a dir or .onnx)."""
    if not path.exists():
        raise InputError(
            f"{path} does not exist. {WHAT_TO_PASS}{model_folders_near(path)}"
        )
    if path.is_file() and path.suffix != ".onnx":
        raise InputError(f"{path} is not an .onnx file. {WHAT_TO_PASS}")
    directory = path if path.is_dir() else path.parent
    card_path = directory / CARD_FILE
    if not card_path.is_file():
        inside = model_folders_in(path) if path.is_dir() else []
        raise InputError(
            f"No model card {card_path}: give an export directory holding "
            f"model.onnx and {CARD_FILE}, or an .onnx file inside one."
            + (f" Model folders in {path}: {', '.join(inside)}." if inside else "")
        )
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise InputError(f"{card_path} is not valid JSON: {error}") from None
    if card.get("schema_version") != CARD_SCHEMA_VERSION:
        raise InputError(
            f"{card_path} has schema version {card.get('schema_version')!r}; this "
            f"runner reads version {CARD_SCHEMA_VERSION}. Use the run_model.py "
            "of the blossom-app version that exported the model."
        )
    onnx_path = directory / card["onnx_file"] if path.is_dir() else path
    if not onnx_path.is_file():
        raise InputError(f"No ONNX model at {onnx_path}.")
    return onnx_path, card


def model_folders_in(directory: Path) -> list[str]:
    """The folders in ``directory`` that hold a model card (export folders)."""
    try:
        return sorted(
            child.name for child in directory.iterdir() if (child / CARD_FILE).is_file()
        )
    except OSError:
        return []


def model_folders_near(path: Path) -> str:
    """What the nearest existing parent of ``path`` offers instead, for the
    message about a missing ``path``: its ``.onnx`` files when it is a model
    folder, else the model folders in it; ``""`` when it offers neither."""
    parent = next((parent for parent in path.parents if parent.is_dir()), None)
    if parent is None:
        return ""
    if (parent / CARD_FILE).is_file():
        models = sorted(child.name for child in parent.glob("*.onnx"))
        return f" {parent} holds {', '.join(models)}." if models else ""
    found = model_folders_in(parent)
    return f" Model folders in {parent}: {', '.join(found)}." if found else ""


def expected_inputs(card: dict) -> str:
    """``acc (batch x 128 x 3), gyro (batch x 128 x 3)``: for error messages."""
    return ", ".join(
        f"{spec['name']} ({' x '.join(str(d) for d in spec['shape'])})"
        for spec in card["inputs"]
    )


def read_windows(path: Path, rank: int) -> np.ndarray:
    """The examples in a ``.npy`` or ``.csv`` file of an input whose examples
    have ``rank`` axes (see the module doc)."""
    if not path.is_file():
        raise InputError(f"No input file {path}.")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise InputError(f"{path} is not a readable .npy array: {error}") from None
        if array.dtype.kind not in "fiu":
            raise InputError(f"{path} holds {array.dtype} values, not numbers.")
        return array
    if path.suffix == ".csv":
        if rank > 2:
            raise InputError(
                f"{path}: a .csv file holds examples of one or two axes; this "
                f"input's have {rank}. Save them as .npy (numpy.save)."
            )
        windows = _read_csv(path)
        return windows.reshape(-1, windows.shape[-1]) if rank == 1 else windows
    raise InputError(f"{path}: input files must end in .npy or .csv.")


def _read_csv(path: Path) -> np.ndarray:
    windows: list[list[list[float]]] = [[]]
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            if windows[-1]:
                windows.append([])
            continue
        try:
            windows[-1].append([float(value) for value in line.split(",")])
        except ValueError:
            raise InputError(
                f"{path}, line {number}: {line!r} is not a comma-separated row of "
                "numbers (one column per channel, no header)."
            ) from None
    windows = [window for window in windows if window]
    if not windows:
        raise InputError(f"{path} holds no rows.")
    try:
        return np.array(windows, dtype=np.float32)
    except ValueError:
        raise InputError(
            f"{path}: every window needs the same number of rows and every row "
            "the same number of columns."
        ) from None


def check_inputs(card: dict, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` as float32 ``windows x *shape``, checked against the card.

    A single window (the card's shape without the batch axis) gets a batch axis.
    A symbolic axis in the card (a name instead of a size) accepts any size.
    """
    specs = {spec["name"]: spec for spec in card["inputs"]}
    unknown = sorted(set(arrays) - set(specs))
    missing = sorted(set(specs) - set(arrays))
    if unknown or missing:
        problem = f"unknown input(s) {unknown}" if unknown else ""
        problem += " and " if unknown and missing else ""
        problem += f"missing input(s) {missing}" if missing else ""
        raise InputError(
            f"This model takes the inputs {expected_inputs(card)}: "
            f"{problem}. Give one --input NAME=FILE per input."
        )
    checked = {}
    for name, array in arrays.items():
        shape = specs[name]["shape"]
        if array.ndim == len(shape) - 1:
            array = array[np.newaxis]
        fits = array.ndim == len(shape) and all(
            isinstance(shape[axis], str) or shape[axis] == array.shape[axis]
            for axis in range(1, len(shape))
        )
        if not fits:
            raise InputError(
                f"Input '{name}' has shape {array.shape}; the model expects "
                f"{' x '.join(str(d) for d in shape)} (inputs: "
                f"{expected_inputs(card)})."
            )
        checked[name] = array.astype(np.float32, copy=False)
    counts = {name: len(array) for name, array in checked.items()}
    if len(set(counts.values())) > 1:
        raise InputError(
            f"The inputs hold different numbers of windows {counts}; each window "
            "needs a value for every input."
        )
    return checked


def open_session(onnx_path: Path) -> ort.InferenceSession:
    """An onnxruntime session on CUDA when this onnxruntime has it, else CPU."""
    available = ort.get_available_providers()
    providers = [
        name
        for name in ("CUDAExecutionProvider", "CPUExecutionProvider")
        if name in available
    ]
    try:
        return ort.InferenceSession(str(onnx_path), providers=providers)
    except Exception as error:  # onnxruntime raises its own, unexported types
        raise InputError(
            f"onnxruntime {ort.__version__} cannot load {onnx_path}: {error}"
        ) from None


def batches(arrays: dict[str, np.ndarray], size: int):
    """``{name: windows[i:i + size]}`` for consecutive batches of windows."""
    count = len(next(iter(arrays.values())))
    for start in range(0, count, size):
        yield {name: array[start : start + size] for name, array in arrays.items()}


def predict(
    session: ort.InferenceSession, arrays: dict[str, np.ndarray], batch_size: int
) -> np.ndarray:
    """Class probabilities ``windows x classes`` (softmax of the logits)."""
    logits = np.concatenate(
        [session.run(None, batch)[0] for batch in batches(arrays, batch_size)]
    )
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def latency_ms(
    session: ort.InferenceSession,
    arrays: dict[str, np.ndarray],
    batch_size: int,
    runs: int,
) -> dict[str, float]:
    """p50/p90/p99 latency (ms) of one call on ``batch_size`` windows.

    Windows are repeated when there are fewer than ``batch_size``.
    """
    count = len(next(iter(arrays.values())))
    index = np.arange(batch_size) % count
    batch = {name: array[index] for name, array in arrays.items()}
    for _ in range(WARMUP_RUNS):
        session.run(None, batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, batch)
        times.append(1000 * (time.perf_counter() - start))
    return {f"p{q}": float(np.percentile(times, q)) for q in (50, 90, 99)}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _named_file(text: str) -> tuple[str, Path]:
    name, sep, file = text.partition("=")
    if not sep or not name or not file:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {text!r}")
    return name, Path(file)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run an exported BLOSSOM model with onnxruntime (no torch).",
        epilog="Input files hold the layout the card (model.json) declares per "
        "input, batch first: sensor windows batch x time x channels; audio batch x "
        "samples (when the card's front_end computes the log-mel) or batch x 1 x "
        "mels x frames; images batch x height x width [x channels] pixels (with a "
        "front_end) or batch x channels x height x width. .npy: any layout, or one "
        "example. .csv: examples of two axes as rows with a blank line between "
        "examples; of one axis, one example per row.",
    )
    parser.add_argument("model", type=Path, help="export directory or .onnx file")
    parser.add_argument(
        "--input",
        dest="inputs",
        type=_named_file,
        action="append",
        required=True,
        metavar="NAME=FILE",
        help="examples of one input (.npy or .csv); repeat for each input",
    )
    parser.add_argument("--runs", type=_positive, default=100, help="timed runs")
    parser.add_argument(
        "--batch-size", type=_positive, default=1, help="windows per call"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        onnx_path, card = load_model(args.model)
        names = [name for name, _ in args.inputs]
        if len(set(names)) < len(names):
            raise InputError(f"An input is given twice: {names}.")
        rank = {spec["name"]: len(spec["shape"]) - 1 for spec in card["inputs"]}
        arrays = check_inputs(
            card,
            {name: read_windows(path, rank.get(name, 2)) for name, path in args.inputs},
        )
        session = open_session(onnx_path)
        model_inputs = sorted(spec.name for spec in session.get_inputs())
        if model_inputs != sorted(arrays):
            raise InputError(
                f"{onnx_path} takes inputs {model_inputs} but its card lists "
                f"{sorted(arrays)}: the card belongs to another model. Export again."
            )
        probabilities = predict(session, arrays, args.batch_size)
        latency = latency_ms(session, arrays, args.batch_size, args.runs)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    classes = card["class_names"]
    print(f"model: {onnx_path} ({session.get_providers()[0]})")
    print("window\tclass\tprobability")
    for index, row in enumerate(probabilities):
        best = int(row.argmax())
        print(f"{index}\t{classes[best]}\t{row[best]:.4f}")
    print(
        f"latency ms (batch {args.batch_size}, {args.runs} runs): "
        + "  ".join(f"{key} {value:.3f}" for key, value in latency.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
