"""The torch-free edge runner (edge/run_model.py) on real exported models: same
predictions as onnxruntime from .npy and .csv, clear refusals, and no torch."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from cards import card_for
from runner_helpers import load_runner, prediction_lines, run_without_torch

from blossom_app.benchmarks import get_task
from blossom_app.common.model import build_model
from blossom_app.data import Split
from blossom_app.onnx.export import export_personalized
from blossom_app.onnx.model_card import ONNX_FILE

TASK = get_task("watch")
WINDOWS = 5


runner = load_runner()


def windows(name: str, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, *TASK.modality(name).shape), dtype=np.float32)


def write_csv(path: Path, data: np.ndarray) -> Path:
    """The runner's CSV layout: a row per time step, a blank line between windows."""
    blocks = [
        "\n".join(",".join(repr(float(v)) for v in row) for row in w) for w in data
    ]
    path.write_text("\n\n".join(blocks) + "\n")
    return path


def export(directory: Path, modalities: tuple[str, ...]) -> Path:
    model = build_model(TASK, modalities, "attention", seed=4)
    card = card_for(model, "attention")
    split = Split({m: windows(m, 4, 0) for m in modalities}, np.zeros(4, np.int64))
    export_personalized(model, card, directory, split, TASK, latency_runs=1)
    return directory


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> Path:
    return export(tmp_path_factory.mktemp("acc-gyro"), ("acc", "gyro"))


@pytest.fixture(scope="module")
def acc_only(tmp_path_factory) -> Path:
    return export(tmp_path_factory.mktemp("acc"), ("acc",))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, object]:
    """5 windows per modality, acc as .npy and gyro as .csv (and as arrays)."""
    directory = tmp_path_factory.mktemp("inputs")
    acc, gyro = windows("acc", WINDOWS, 1), windows("gyro", WINDOWS, 2)
    np.save(directory / "acc.npy", acc)
    return {
        "acc": acc,
        "gyro": gyro,
        "acc.npy": directory / "acc.npy",
        "gyro.csv": write_csv(directory / "gyro.csv", gyro),
    }


def expected_lines(model_dir: Path, arrays: dict[str, np.ndarray]) -> list[tuple]:
    """``(index, class, probability)`` computed with onnxruntime directly."""
    session = ort.InferenceSession(
        str(model_dir / ONNX_FILE), providers=["CPUExecutionProvider"]
    )
    logits = session.run(["logits"], arrays)[0].astype(np.float64)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return [
        (i, TASK.class_names[row.argmax()], pytest.approx(row.max(), abs=1e-4))
        for i, row in enumerate(probabilities)
    ]


@pytest.mark.parametrize("target", ["directory", "onnx file"])
def test_predictions_equal_onnxruntime_from_npy_and_csv(both, inputs, target, capsys):
    model = both if target == "directory" else both / ONNX_FILE

    code = runner.main(
        [
            str(model),
            f"--input=acc={inputs['acc.npy']}",
            f"--input=gyro={inputs['gyro.csv']}",
            "--runs=3",
            "--batch-size=2",
        ]
    )
    output = capsys.readouterr().out

    assert code == 0
    assert prediction_lines(output) == expected_lines(
        both, {"acc": inputs["acc"], "gyro": inputs["gyro"]}
    )
    assert "latency ms (batch 2, 3 runs): p50 " in output
    assert " p90 " in output and " p99 " in output


def test_one_window_npy_gets_a_batch_axis(acc_only, inputs, tmp_path, capsys):
    np.save(tmp_path / "one.npy", inputs["acc"][0])

    code = runner.main([str(acc_only), f"--input=acc={tmp_path / 'one.npy'}"])

    assert code == 0
    assert prediction_lines(capsys.readouterr().out) == expected_lines(
        acc_only, {"acc": inputs["acc"][:1]}
    )


def test_csv_reads_windows_split_by_blank_lines(inputs):
    read = runner.read_windows(inputs["gyro.csv"], rank=2)

    np.testing.assert_array_equal(read, inputs["gyro"])


def test_refuses_a_modality_the_model_was_not_exported_for(acc_only, inputs, capsys):
    code = runner.main([str(acc_only), f"--input=gyro={inputs['gyro.csv']}"])
    error = capsys.readouterr().err

    assert code == 2
    assert "acc (batch x 128 x 3)" in error
    assert "unknown input(s) ['gyro']" in error and "missing input(s) ['acc']" in error


def test_refuses_a_missing_input(both, inputs, capsys):
    code = runner.main([str(both), f"--input=acc={inputs['acc.npy']}"])
    error = capsys.readouterr().err

    assert code == 2
    assert "missing input(s) ['gyro']" in error
    assert "acc (batch x 128 x 3), gyro (batch x 128 x 3)" in error


def test_refuses_a_wrong_shape(both, inputs, tmp_path, capsys):
    np.save(tmp_path / "short.npy", inputs["acc"][:, :64])

    code = runner.main(
        [
            str(both),
            f"--input=acc={tmp_path / 'short.npy'}",
            f"--input=gyro={inputs['gyro.csv']}",
        ]
    )
    error = capsys.readouterr().err

    assert code == 2
    assert "Input 'acc' has shape (5, 64, 3)" in error
    assert "expects batch x 128 x 3" in error


def test_refuses_a_ragged_csv(acc_only, tmp_path, capsys):
    (tmp_path / "acc.csv").write_text("1,2,3\n4,5\n")

    code = runner.main([str(acc_only), f"--input=acc={tmp_path / 'acc.csv'}"])

    assert code == 2
    assert "same number of columns" in capsys.readouterr().err


def test_runs_where_torch_cannot_be_imported(both, inputs):
    result = run_without_torch(
        str(both),
        f"--input=acc={inputs['acc.npy']}",
        f"--input=gyro={inputs['gyro.csv']}",
        "--runs=2",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("torch is not importable\n")
    assert prediction_lines(result.stdout) == expected_lines(
        both, {"acc": inputs["acc"], "gyro": inputs["gyro"]}
    )
