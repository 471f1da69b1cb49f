"""A plug-in whose audio and images are raw arrays (``examples/raw_plugin``):
float samples at a declared rate through a plain feature function over
``LogMel``, flat pixel lists through ``ImagePixels(stored=...)``, partitioned
by speaker, through a real ``flwr run`` with clients missing a modality."""

import os
from pathlib import Path

import pytest

from blossom_app.reporting.csv_files import read_rows
from blossom_app.tools.flwr_runner import run_app

APP = Path(__file__).parents[1]
EXAMPLE = APP / "examples" / "raw_plugin"


def run_raw(flwr_env, tmp_path, monkeypatch, mix: str, clients: int):
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
            "export-onnx": False,
            # the recipe: the plug-in's default preset, `arrays` (AdamW)
        },
        num_supernodes=clients,
        env={**flwr_env, "PYTHONPATH": f"{EXAMPLE}{os.pathsep}{APP}"},
        timeout=600,
    )


@pytest.mark.timeout(600)
def test_raw_audio_and_image_arrays_learn_end_to_end(flwr_env, tmp_path, monkeypatch):
    outcome = run_raw(
        flwr_env, tmp_path, monkeypatch, "audio=2,image=2,audio+image=2", 6
    )
    assert outcome.ok, outcome.output[-3000:]
    [experiment] = Path(flwr_env["BLOSSOM_RESULTS_DIR"]).glob("raw/natural/*/*/*")
    clients = read_rows(experiment / "run_0" / "client_metrics.csv")
    assert {r["modalities"] for r in clients} == {"audio", "image", "audio+image"}
    aggregated = read_rows(experiment / "aggregated_metrics.csv")
    assert len(aggregated) == 4  # the preset's rounds
    final = aggregated[-1]
    assert float(final["weighted_accuracy_mean"]) > 0.5  # 4 classes: chance 0.25


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
