"""A plug-in whose audio and images are raw arrays (``examples/raw_plugin``):
float samples at a declared rate through a plain feature function over
``LogMel``, flat pixel lists through ``ImagePixels(stored=...)``, partitioned
by speaker, through a real ``flwr run`` with clients missing a modality; the
audio model a node exported runs on new recordings where torch cannot be
imported, as the torch model predicts."""

import os
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from runner_helpers import assert_predicts_without_torch, run_without_torch

from blossom_app.common.model import build_model
from blossom_app.reporting.csv_files import read_rows
from blossom_app.tools.flwr_runner import run_app

APP = Path(__file__).parents[1]
EXAMPLE = APP / "examples" / "raw_plugin"


def run_raw(flwr_env, tmp_path, monkeypatch, mix: str, clients: int, export=False):
    """``flwr run`` of the raw plug-in on a dataset of 6 speakers, partitioned
    by speaker, with ``mix`` over ``clients`` simulated nodes."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from raw_blossom import build

    data = build(tmp_path / "raw.parquet")
    return run_app(
        APP,
        {
            "dataset": "raw_blossom:TASK",
            "data-source": str(data),
            "partitioner": "natural",
            "modality-mix": mix,
            "aggregation": "private-head-fusion",
            "export-onnx": export,
            # the recipe: the plug-in's default preset, `arrays` (AdamW)
        },
        num_supernodes=clients,
        env={**flwr_env, "PYTHONPATH": f"{EXAMPLE}{os.pathsep}{APP}"},
        timeout=600,
    )


@pytest.mark.timeout(600)
def test_raw_audio_and_image_arrays_learn_end_to_end(flwr_env, tmp_path, monkeypatch):
    outcome = run_raw(
        flwr_env, tmp_path, monkeypatch, "audio=2,image=2,audio+image=2", 6, True
    )
    assert outcome.ok, outcome.output[-3000:]
    [experiment] = Path(flwr_env["BLOSSOM_RESULTS_DIR"]).glob("raw/natural/*/*/*")
    clients = read_rows(experiment / "run_0" / "client_metrics.csv")
    assert {r["modalities"] for r in clients} == {"audio", "image", "audio+image"}
    aggregated = read_rows(experiment / "aggregated_metrics.csv")
    assert len(aggregated) == 4  # the preset's rounds
    final = aggregated[-1]
    assert float(final["weighted_accuracy_mean"]) > 0.5  # 4 classes: chance 0.25
    audio_model = min((experiment / "run_0" / "models").glob("partition-*-audio"))
    assert_runs_without_torch_as_torch_predicts(audio_model, tmp_path)


def assert_runs_without_torch_as_torch_predicts(model_dir: Path, tmp_path: Path):
    """Feed new recordings to the exported model where torch cannot be
    imported; compare with the torch model (``model.pt``) on their features."""
    from raw_blossom import TASK, build

    rows = datasets.Dataset.from_parquet(str(build(tmp_path / "new.parquet", 8, 2, 7)))
    clips = np.asarray(rows["audio"], np.float32)
    np.save(tmp_path / "audio.npy", clips)
    saved = torch.load(model_dir / "model.pt", weights_only=True)
    model = build_model(TASK, ("audio",), saved["fusion"], seed=0)
    model.load_state_dict(saved["state_dict"])
    features = np.stack([TASK.modality("audio").features(clip) for clip in clips])
    with torch.no_grad():
        logits = model.eval()({"audio": torch.from_numpy(features)})
    probabilities = torch.softmax(logits, dim=1).numpy()

    result = run_without_torch(
        str(model_dir), f"--input=audio={tmp_path / 'audio.npy'}"
    )

    assert_predicts_without_torch(result, TASK.class_names, probabilities)


@pytest.mark.timeout(600)
def test_a_natural_partition_of_the_wrong_size_is_said_once(
    flwr_env, tmp_path, monkeypatch
):
    outcome = run_raw(
        flwr_env, tmp_path, monkeypatch, "audio=1,image=1,audio+image=2", 4
    )

    assert not outcome.ok
    said = [line for line in outcome.output.splitlines() if "distinct groups" in line]
    assert len(said) == 1, outcome.output[-5000:]
    assert "All of the 4 nodes report" in said[0]
    assert "a modality-mix of 6 clients" in said[0]
    assert "num-supernodes=6" in said[0]
