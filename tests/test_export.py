"""ONNX export of personalized models: parity, file format, card, quantization,
re-export. Tiny random models and random windows: no dataset, no Flower."""

import sysconfig
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from cards import card_for

import blossom_app
from blossom_app.benchmarks import get_task
from blossom_app.common.model import MultimodalModel, build_model
from blossom_app.data import Split
from blossom_app.onnx.export import (
    MAX_IR_VERSION,
    PARITY_TOLERANCE,
    PROBE_WINDOWS,
    ExportReport,
    export_personalized,
    reexport,
)
from blossom_app.onnx.model_card import CARD_FILE, ONNX_FILE, ModelCard, build_card
from blossom_app.onnx.quantize import INT8_FILE
from blossom_app.onnx.weights import WEIGHTS_FILE, load_weights

TASK = get_task("watch")
CASES = [
    (("acc",), "attention"),
    (("gyro",), "concat"),
    (("acc", "gyro"), "attention"),
    (("acc", "gyro"), "concat"),
]
LATENCY_RUNS = 3


def random_split(modalities: tuple[str, ...], windows: int, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    return Split(
        inputs={
            name: rng.standard_normal(
                (windows, *TASK.modality(name).shape), dtype=np.float32
            )
            for name in modalities
        },
        labels=rng.integers(0, TASK.num_classes, windows),
    )


def torch_logits(model: MultimodalModel, inputs: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        tensors = {name: torch.from_numpy(array) for name, array in inputs.items()}
        return model.eval()(tensors).numpy()


def ort_run(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], inputs)[0]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{'+'.join(c[0])}-{c[1]}")
def exported(request, tmp_path_factory):
    """(model, card, directory, report) of one exported random model."""
    modalities, fusion = request.param
    model = build_model(TASK, modalities, fusion, seed=3)
    # a client's own input statistics, far from identity: the export bakes them in
    raw = random_split(modalities, 50, seed=1)
    model.fit_normalization(
        Split({m: 4 * x + 9 for m, x in raw.inputs.items()}, raw.labels)
    )
    card = card_for(model, fusion)
    out_dir = tmp_path_factory.mktemp("export")
    report = export_personalized(
        model,
        card,
        out_dir,
        random_split(modalities, 20),
        TASK,
        latency_runs=LATENCY_RUNS,
    )
    return model, card, out_dir, report


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_logits_equal_torch_at_any_batch_size(exported, batch):
    model, _, out_dir, report = exported
    inputs = random_split(model.modalities, batch, seed=batch).inputs

    error = np.abs(ort_run(out_dir / ONNX_FILE, inputs) - torch_logits(model, inputs))

    assert error.max() <= PARITY_TOLERANCE
    assert report.parity_max_abs_error <= PARITY_TOLERANCE
    assert report.parity_windows == 20


def test_the_clients_input_statistics_are_in_the_model_and_on_the_card(exported):
    """A device feeds raw values: the ONNX model standardizes them itself with
    the client's statistics, which the card also lists."""
    model, card, out_dir, _ = exported
    raw = {m: 4 * x + 9 for m, x in random_split(model.modalities, 4).inputs.items()}
    np.testing.assert_allclose(
        ort_run(out_dir / ONNX_FILE, raw), torch_logits(model, raw), atol=1e-4
    )
    identity = build_model(TASK, model.modalities, card.fusion, seed=3)
    assert not np.allclose(torch_logits(identity, raw), torch_logits(model, raw))
    saved = ModelCard.load(out_dir / CARD_FILE)
    for spec in saved.inputs:
        stats = spec.normalization
        assert stats == model.normalization()[spec.name]
        assert np.allclose(stats["mean"], 9, atol=1) and np.allclose(
            stats["std"], 4, atol=0.5
        )


def test_one_self_contained_file(exported):
    _, _, out_dir, report = exported

    proto = onnx.load(str(out_dir / ONNX_FILE), load_external_data=False)

    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [CARD_FILE, ONNX_FILE, WEIGHTS_FILE]
    )
    assert not any(
        onnx.external_data_helper.uses_external_data(t) for t in proto.graph.initializer
    )
    assert report.size_bytes == (out_dir / ONNX_FILE).stat().st_size


def test_inputs_and_output_are_the_cards(exported):
    _, card, out_dir, _ = exported
    session = ort.InferenceSession(
        str(out_dir / ONNX_FILE), providers=["CPUExecutionProvider"]
    )

    inputs = [(i.name, i.shape, i.type) for i in session.get_inputs()]
    (output,) = session.get_outputs()

    assert inputs == [
        (spec.name, list(spec.shape), "tensor(float)") for spec in card.inputs
    ]
    assert card.inputs[0].shape == ("batch", *TASK.modality(card.modalities[0]).shape)
    assert (output.name, output.shape) == (card.output, ["batch", TASK.num_classes])


def test_versions_old_onnxruntime_loads(exported):
    _, _, out_dir, report = exported

    proto = onnx.load(str(out_dir / ONNX_FILE))
    opset = {entry.domain: entry.version for entry in proto.opset_import}[""]
    card = ModelCard.load(out_dir / CARD_FILE)

    assert proto.ir_version <= MAX_IR_VERSION
    assert opset <= 18
    assert (card.opset, card.ir_version) == (opset, proto.ir_version)
    assert (report.opset, report.ir_version) == (opset, proto.ir_version)


def local_paths_in(path: Path) -> list[str]:
    """The repository and site-packages paths that occur in the file at ``path``."""
    local = [
        str(Path(blossom_app.__file__).resolve().parents[1]),
        sysconfig.get_paths()["purelib"],
        "site-packages",
    ]
    data = path.read_bytes()
    return [text for text in local if text.encode() in data]


def test_no_local_paths_in_the_file(exported):
    _, _, out_dir, _ = exported

    assert local_paths_in(out_dir / ONNX_FILE) == []


def test_card_round_trips_and_is_written_with_the_export(exported):
    _, card, out_dir, _ = exported

    saved = ModelCard.load(out_dir / CARD_FILE)

    assert ModelCard.from_json(saved.to_json()) == saved
    assert saved == card.exported(opset=saved.opset, ir_version=saved.ir_version)
    assert saved.class_names == TASK.class_names


def test_card_refuses_another_schema_version(exported):
    _, card, _, _ = exported

    text = card.to_json().replace('"schema_version": 1', '"schema_version": 2')

    with pytest.raises(ValueError, match="schema version 2"):
        ModelCard.from_json(text)


def test_report_is_flat_metadata(exported):
    *_, report = exported

    record = report.to_record()

    assert {type(value) for value in record.values()} <= {str, int, float}
    assert record["onnx-file"] == ONNX_FILE
    assert len(record["sha256"]) == 64
    assert record["ort-latency-ms"] > 0 and record["torch-latency-ms"] > 0
    assert "int8-file" not in record  # not quantized: None fields are left out


def test_model_pt_loads_with_weights_only_and_rebuilds_the_model(exported):
    model, card, out_dir, _ = exported

    saved = torch.load(out_dir / WEIGHTS_FILE, weights_only=True)
    rebuilt, rebuilt_card, _ = load_weights(out_dir / WEIGHTS_FILE)
    inputs = random_split(model.modalities, 4).inputs

    assert (saved["task"], saved["fusion"]) == ("watch", card.fusion)
    assert tuple(saved["modalities"]) == model.modalities
    assert rebuilt_card == ModelCard.load(out_dir / CARD_FILE)
    np.testing.assert_array_equal(
        torch_logits(rebuilt, inputs), torch_logits(model, inputs)
    )


def test_reexport_gives_the_same_model(exported, tmp_path):
    model, _, out_dir, report = exported

    again = reexport(out_dir / WEIGHTS_FILE, tmp_path)
    inputs = random_split(model.modalities, 6, seed=9).inputs

    np.testing.assert_array_equal(
        ort_run(tmp_path / ONNX_FILE, inputs), ort_run(out_dir / ONNX_FILE, inputs)
    )
    assert again.parity_windows == PROBE_WINDOWS
    assert again.parity_max_abs_error <= PARITY_TOLERANCE
    assert ModelCard.load(tmp_path / CARD_FILE) == ModelCard.load(out_dir / CARD_FILE)


def test_export_leaves_the_model_as_it_was(tmp_path):
    model = build_model(TASK, ("acc",), "attention", seed=1)  # training mode
    before = {key: value.clone() for key, value in model.state_dict().items()}

    export_personalized(
        model,
        card_for(model, "attention"),
        tmp_path,
        random_split(("acc",), 4),
        TASK,
        latency_runs=LATENCY_RUNS,
    )

    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_card_for_other_modalities_is_refused(tmp_path):
    model = build_model(TASK, ("acc", "gyro"), "concat", seed=1)
    card = build_card(
        TASK,
        ("acc",),
        fusion="concat",
        policy="local",
        run_index=0,
        server_round=1,
        test_accuracy=0.0,
        test_macro_f1=0.0,
    )

    with pytest.raises(ValueError, match="card lists inputs"):
        export_personalized(
            model, card, tmp_path, random_split(("acc", "gyro"), 2), TASK
        )
    assert not list(tmp_path.iterdir())


def test_quantized_file_is_smaller_loads_and_reports_accuracy_change(tmp_path):
    modalities = ("acc", "gyro")
    model = build_model(TASK, modalities, "attention", seed=5)
    split = random_split(modalities, 30)

    report = export_personalized(
        model,
        card_for(model, "attention"),
        tmp_path,
        split,
        TASK,
        quantize=True,
        latency_runs=LATENCY_RUNS,
    )
    int8 = ort_run(tmp_path / INT8_FILE, split.inputs)
    fp32 = ort_run(tmp_path / ONNX_FILE, split.inputs)
    accuracy = {
        name: float(np.mean(logits.argmax(axis=1) == split.labels))
        for name, logits in (("int8", int8), ("fp32", fp32))
    }

    assert report.int8_file == INT8_FILE
    assert report.int8_size_bytes == (tmp_path / INT8_FILE).stat().st_size
    assert report.int8_size_bytes < report.size_bytes
    assert report.int8_accuracy_delta == pytest.approx(
        accuracy["int8"] - accuracy["fp32"]
    )
    assert 0 < report.int8_max_abs_error < 0.05
    assert local_paths_in(tmp_path / INT8_FILE) == []
    assert {type(v) for v in report.to_record().values()} <= {str, int, float}


def test_reexport_without_labels_reports_no_accuracy_change(tmp_path):
    model = build_model(TASK, ("gyro",), "attention", seed=2)
    export_personalized(
        model,
        card_for(model, "attention"),
        tmp_path,
        random_split(("gyro",), 3),
        TASK,
        latency_runs=LATENCY_RUNS,
    )

    report: ExportReport = reexport(
        tmp_path / WEIGHTS_FILE, quantize=True, latency_runs=LATENCY_RUNS
    )

    assert (tmp_path / INT8_FILE).is_file()
    assert report.int8_accuracy_delta is None
    assert "int8-accuracy-delta" not in report.to_record()

    reexport(tmp_path / WEIGHTS_FILE, latency_runs=LATENCY_RUNS)

    assert not (tmp_path / INT8_FILE).exists()  # a stale int8 file is removed
