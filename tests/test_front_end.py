"""Front ends (benchmarks/front_end.py): the log-mel and pixel computations as
modules that equal the training features, exported in the ONNX graph, and an
exported raw audio + image model run where torch cannot be imported, giving
the torch model's predictions on the same recordings."""

import json
import sys
from dataclasses import dataclass, fields, replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from cards import card_for
from runner_helpers import assert_predicts_without_torch, run_without_torch

from blossom_app.benchmarks import ModalitySpec
from blossom_app.benchmarks.audio import FRONT_END_TOLERANCE_DB, LogMel, LogMelFrontEnd
from blossom_app.benchmarks.image import FRONT_END_TOLERANCE, ImagePixels
from blossom_app.common.model import build_model
from blossom_app.common.training import TrainingSettings, train
from blossom_app.data import Split
from blossom_app.onnx.export import ExportError, export_personalized
from blossom_app.onnx.model_card import CARD_FILE, ModelCard
from blossom_app.onnx.quantize import INT8_FILE, MODEL_SCOPE

LOG_MELS = {
    "raw plug-in (image, padded frames)": LogMel(
        16, 30, 1.0, 0.064, 0.04, as_image=True, sample_rate=8000
    ),
    "16 kHz frames x mels (cut frames)": LogMel(40, 80, 1.0, sample_rate=16000),
    "AV-MNIST's at 48 kHz": LogMel(
        64, 141, 1.5, 1024 / 48000, 512 / 48000, as_image=True, sample_rate=48000
    ),
}
PIXELS = {
    "flat 8 x 8 in [0, 1]": ImagePixels(
        1, 8, 8, (0.2,), (0.4,), stored=(8, 8), pixel_max=1.0
    ),
    "RGB 56 x 40 to gray 28 x 28": ImagePixels(
        1, 28, 28, (0.13,), (0.31,), stored=(56, 40, 3)
    ),
    "gray 32 x 32 to RGB 16 x 16": ImagePixels(
        3, 16, 16, (0.5, 0.4, 0.3), (0.2, 0.2, 0.2), stored=(32, 32)
    ),
    "RGB PIL image at its size": ImagePixels(3, 16, 16, (0.5,) * 3, (0.25,) * 3),
    "gray PIL image (AV-MNIST's)": ImagePixels(1, 28, 28, (0.1307,), (0.3081,)),
}


def module_and_features(front_end, count: int = 6):
    raw = front_end.probe(count, np.random.default_rng(1))
    with torch.no_grad():
        computed = front_end.module()(torch.from_numpy(raw)).numpy()
    stored = [front_end.as_stored(example) for example in raw]  # PIL without stored
    return computed, np.stack([front_end(value) for value in stored])


@pytest.mark.parametrize("log_mel", LOG_MELS.values(), ids=LOG_MELS.keys())
def test_log_mel_module_equals_the_training_features(log_mel):
    computed, features = module_and_features(log_mel)

    assert computed.shape == features.shape == (6, *log_mel.shape)
    assert np.abs(computed - features).max() <= FRONT_END_TOLERANCE_DB
    assert np.ptp(features) > 20  # real spectra, not a flat floor


@pytest.mark.parametrize("pixels", PIXELS.values(), ids=PIXELS.keys())
def test_pixel_module_equals_the_training_features(pixels):
    computed, features = module_and_features(pixels)

    assert computed.shape == features.shape == (6, *pixels.shape)
    assert np.abs(computed - features).max() <= FRONT_END_TOLERANCE


def test_a_front_end_needs_a_rate_for_audio():
    without_rate = LogMel(16, 30, 1.0)

    implicit = ModalitySpec("audio", without_rate.shape, features=without_rate)
    assert implicit.front_end is None  # the model takes spectrograms then
    with pytest.raises(ValueError, match="needs sample_rate"):
        ModalitySpec("audio", without_rate.shape, front_end=without_rate)


@pytest.fixture(scope="module")
def raw_task(tmp_path_factory):
    """The raw-array example plug-in's task and a few hundred of its rows."""
    from test_raw_plugin import EXAMPLE

    sys.path.insert(0, str(EXAMPLE))
    try:
        import datasets
        from raw_blossom import TASK, build
    finally:
        sys.path.remove(str(EXAMPLE))
    rows = datasets.Dataset.from_parquet(
        str(build(tmp_path_factory.mktemp("raw") / "raw.parquet", rows=160))
    )
    return (
        TASK,
        {name: np.asarray(rows[name], np.float32) for name in ("audio", "image")},
        np.asarray(rows["label"]),
    )


@pytest.fixture(scope="module")
def exported_raw(raw_task, tmp_path_factory):
    """A raw plug-in model trained on its features, exported with int8; the
    recordings of its held-out examples and the torch model's probabilities."""
    task, raw, labels = raw_task
    features = {
        name: np.stack([task.modality(name).features(value) for value in values])
        for name, values in raw.items()
    }
    train_split = Split({k: v[:120] for k, v in features.items()}, labels[:120])
    model = build_model(task, ("audio", "image"), "attention", seed=0)
    model.fit_normalization(train_split)
    settings = TrainingSettings(epochs=8, optimizer="adamw", learning_rate=0.005)
    train(
        model, train_split, settings, server_round=1, device=torch.device("cpu"), seed=0
    )
    model.eval()
    held_out = {k: v[120:] for k, v in features.items()}
    with torch.no_grad():
        logits = model({k: torch.from_numpy(v) for k, v in held_out.items()})
    directory = tmp_path_factory.mktemp("model")
    report = export_personalized(
        model,
        card_for(model, "attention", dataset=task),
        directory,
        Split(held_out, labels[120:]),
        task,
        quantize=True,
        latency_runs=1,
    )
    recordings = {name: values[120:] for name, values in raw.items()}
    return directory, report, recordings, torch.softmax(logits, 1).numpy(), labels[120:]


def test_card_declares_recordings_in_and_the_front_ends(exported_raw):
    directory, report, _, _, _ = exported_raw
    card = ModelCard.load(directory / CARD_FILE)
    audio, image = card.inputs

    assert (audio.shape, audio.layout) == (("batch", 8000), "batch x samples")
    assert "8000 Hz" in audio.preprocessing and "log-mel" in audio.front_end
    assert (image.shape, image.layout) == (("batch", 8, 8), "batch x height x width")
    assert "0 to 1" in image.preprocessing and "standardized" in image.front_end
    assert 0 < report.front_end_max_abs_error <= FRONT_END_TOLERANCE_DB
    assert report.int8_accuracy_delta is None  # its test split holds features


def test_model_runs_on_recordings_without_torch_as_torch_predicts(
    exported_raw, tmp_path
):
    directory, _, recordings, probabilities, labels = exported_raw
    np.save(tmp_path / "audio.npy", recordings["audio"])
    np.save(tmp_path / "image.npy", recordings["image"].reshape(-1, 8, 8))
    classes = json.loads((directory / CARD_FILE).read_text())["class_names"]

    result = run_without_torch(
        str(directory),
        f"--input=audio={tmp_path / 'audio.npy'}",
        f"--input=image={tmp_path / 'image.npy'}",
        "--runs=2",
    )

    assert_predicts_without_torch(result, classes, probabilities)
    assert np.mean(probabilities.argmax(1) == labels) > 0.9  # it learned


def test_int8_model_keeps_its_front_ends_in_float(exported_raw):
    directory, _, recordings, probabilities, _ = exported_raw
    graph = onnx.load(directory / INT8_FILE).graph
    quantized = {node.name for node in graph.node if "Integer" in node.op_type}
    session = ort.InferenceSession(str(directory / INT8_FILE))
    feed = {**recordings, "image": recordings["image"].reshape(-1, 8, 8)}

    assert quantized  # the encoders, fusion and head are quantized
    assert all(name.startswith(MODEL_SCOPE) for name in quantized)
    logits = session.run(None, feed)[0]
    np.testing.assert_array_equal(logits.argmax(1), probabilities.argmax(1))


@dataclass(frozen=True)
class MisfitLogMel(LogMel):
    """A front end whose module is not what its features compute."""

    def module(self) -> LogMelFrontEnd:
        return LogMelFrontEnd(replace(self, top_db=20.0))


def test_a_front_end_unlike_its_features_is_refused_and_nothing_written(
    raw_task, tmp_path
):
    task, _, _ = raw_task
    audio = task.modality("audio")
    misfit = MisfitLogMel(
        **{f.name: getattr(audio.front_end, f.name) for f in fields(LogMel)}
    )
    task = replace(task, modalities=(replace(audio, front_end=misfit),))
    model = build_model(task, ("audio",), "attention", seed=0)
    split = Split({"audio": np.zeros((4, *audio.shape), np.float32)}, np.zeros(4, int))

    with pytest.raises(ExportError, match="front end of 'audio' differs from its"):
        export_personalized(
            model, card_for(model, "attention", task), tmp_path, split, task
        )
    assert not list(tmp_path.iterdir())
