"""The paper's benchmarks: each loads a dataset in its schema through the same
code path as the hub, refuses a schema mismatch naming the column, splits
overlapping windows without leakage, and runs a two-round simulation with a mix
that leaves clients without a modality."""

from pathlib import Path

import datasets
import pytest
from benchmark_rows import write
from cards import card_for
from rounds import DEFAULTS

from blossom_app.benchmarks import get_task
from blossom_app.common.config import ExperimentConfig
from blossom_app.common.model import build_model
from blossom_app.common.presets import (
    available_presets,
    grid_presets,
    resolve_preset,
)
from blossom_app.data import DataSettings, load_client_data
from blossom_app.data.loading import load_task_dataset
from blossom_app.data.splits import SPLIT_COLUMN, split_dataset
from blossom_app.errors import ConfigError, DataError
from blossom_app.onnx.export import PARITY_TOLERANCE, export_personalized
from blossom_app.onnx.model_card import CARD_FILE, ModelCard
from blossom_app.reporting.csv_files import read_rows
from blossom_app.tools.flwr_runner import run_app
from blossom_app.tools.sweep import SweepGrid

APP = Path(__file__).parents[1]
BENCHMARKS = ("ucihar", "kuhar", "ptbxl", "meld", "iemocap", "avmnist")
#: The paper's recipe per dataset: (optimizer, learning rate, weight decay).
PAPER_RECIPES = {
    "ucihar": ("sgd", 0.05, 1e-5),
    "kuhar": ("sgd", 0.05, 1e-5),
    "ptbxl": ("sgd", 0.05, 1e-5),
    "meld": ("sgd", 0.01, 1e-5),
    "iemocap": ("sgd", 0.01, 1e-5),
    "avmnist": ("adamw", 1e-3, 1e-4),
}


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_dataset_in_the_schema_loads_for_every_modality_set(name, tmp_path):
    task = get_task(name)
    disk = name == "ptbxl"  # both local formats the hub loader reads
    path = tmp_path / ("data" if disk else "data.parquet")
    source = write(task, path, 60, fmt="disk" if disk else "parquet")
    for modalities in ((task.modality_names[0],), task.modality_names):
        data = load_client_data(
            DataSettings(task, source=str(source), num_partitions=3), 1, modalities
        )
        assert set(data.train.inputs) == set(modalities)
        for m in modalities:
            assert data.train.inputs[m].shape[1:] == task.modality(m).shape
        model = build_model(task, modalities, "attention", seed=0)
        import torch

        logits = model(
            {m: torch.from_numpy(x[:2]) for m, x in data.test.inputs.items()}
        )
        assert logits.shape == (2, task.num_classes)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_schema_mismatch_names_the_column_and_what_was_expected(name, tmp_path):
    task = get_task(name)
    first, second = task.modalities
    missing = write(task, tmp_path / "missing.parquet", 12, **{second.column: None})
    with pytest.raises(DataError, match=second.column) as error:
        load_client_data(
            DataSettings(task, source=str(missing)), 0, task.modality_names
        )
    assert first.column in str(error.value)  # the columns found are listed
    if first.features is None:  # arrays of another shape
        short = [[[0.0] * first.shape[1]] * (first.shape[0] // 2)] * 12
        wrong = write(task, tmp_path / "shape.parquet", 12, **{first.column: short})
        with pytest.raises(DataError, match=rf"'{first.column}'.*{first.shape}"):
            load_task_dataset(task, str(wrong))
    else:  # values its features cannot read (numbers for a clip, a text, an image)
        wrong = write(task, tmp_path / "kind.parquet", 12, **{first.column: [7] * 12})
        with pytest.raises(DataError, match=rf"Column '{first.column}'.*int"):
            load_task_dataset(task, str(wrong))
    outside = ["no-such-label"] * 12 if task.label_map else [task.num_classes] * 12
    label = task.label_column
    bad = write(task, tmp_path / "label.parquet", 12, **{label: outside})
    expected = "expected one of" if task.label_map else rf"\[0, {task.num_classes}\)"
    with pytest.raises(DataError, match=rf"'{label}'.*{expected}"):
        load_task_dataset(task, str(bad))


@pytest.mark.parametrize("name", ["meld", "avmnist"])
def test_audio_text_and_image_models_export_with_their_preprocessing(name, tmp_path):
    """The features are computed before the model (the card says how), or by
    the model's front end (AV-MNIST's images: the card says what to feed); the
    model, its token embedding and 2-D convolutions, exports with parity and
    int8 quantization."""
    task = get_task(name)
    source = write(task, tmp_path / "data.parquet", 30)
    data = load_client_data(
        DataSettings(task, source=str(source)), 0, task.modality_names
    )
    model = build_model(task, task.modality_names, "attention", seed=0)
    model.fit_normalization(data.train)
    card = card_for(model, "attention", name)
    report = export_personalized(
        model, card, tmp_path / "out", data.test, task, quantize=True, latency_runs=2
    )
    assert report.parity_max_abs_error <= PARITY_TOLERANCE
    written = ModelCard.from_json((tmp_path / "out" / CARD_FILE).read_text())
    for spec in written.inputs:
        modality = task.modality(spec.name)
        if modality.front_end is None:  # computed before
            assert spec.preprocessing == modality.preprocessing
            assert spec.shape[1:] == modality.shape
        else:  # computed by the model from what a device stores
            assert spec.front_end == modality.preprocessing
            assert spec.shape[1:] == modality.front_end.device_input().shape
    with_front_end = name == "avmnist"  # its images: pixels as stored
    assert [s.name for s in written.inputs if s.front_end] == ["image"] * with_front_end
    assert (report.int8_accuracy_delta is None) == with_front_end
    kinds = {
        s.name: (s.front_end or s.preprocessing).split(" (")[0] for s in written.inputs
    }
    assert any("log-mel" in kind for kind in kinds.values()), kinds
    if name == "meld":  # token ids are not standardized
        assert (
            written.inputs[1].name == "text" and written.inputs[1].normalization is None
        )


def test_labels_are_read_from_names_class_label_names_or_ids(tmp_path):
    """A label-mapped task reads names (lower-cased), a ClassLabel's names or
    raw ids, and leaves out the rows of labels it has no class for."""
    iemocap = get_task("iemocap")  # raw ids: 1 sad, 6 neu, 7 ang, 8 hap, 10 exc
    raw = [1, 6, 7, 8, 10, 0, 2] * 3
    ids = write(iemocap, tmp_path / "ids.parquet", 21, names=False, label=raw)
    assert load_task_dataset(iemocap, str(ids))["label"] == [0, 1, 2, 3, 3] * 3
    meld = get_task("meld")
    table = datasets.Dataset.from_parquet(str(write(meld, tmp_path / "m.parquet", 8)))
    named = ["Joy", "surprise", "ANGER", "sadness", "neutral", "fear", "joy", "joy"]
    table = table.remove_columns("emotion").add_column("emotion", named)
    table = table.class_encode_column("emotion")  # ids by sorted name
    table.save_to_disk(str(tmp_path / "classlabel"))
    loaded = load_task_dataset(meld, str(tmp_path / "classlabel"))
    assert loaded["emotion"] == [1, 0, 3, 2, 1, 1]  # joy anger sadness neutral joy joy


def test_mobilebert_text_needs_its_extra_or_the_hub_and_says_so(tmp_path, monkeypatch):
    """The paper's MobileBERT text features are optional: without the extra
    (or without the hub) the error says what to install or to use instead."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    task = get_task("meld-mobilebert")
    source = write(task, tmp_path / "data.parquet", 12)
    with pytest.raises(DataError, match=r"Column 'text'.*without '-mobilebert'"):
        load_task_dataset(task, str(source))


def test_overlapping_windows_are_split_in_order_per_subject(tmp_path):
    """UCI-HAR's windows overlap their neighbours: each subject's rows are cut
    in order, and the last train row before the cut is dropped."""
    task = get_task("ucihar")
    dataset = load_task_dataset(task, str(write(task, tmp_path / "d.parquet", 60)))
    split = split_dataset(dataset, 0.3, seed=0, window=128, in_order_by="subject")
    subjects = split["subject"]
    flags = split[SPLIT_COLUMN]
    for subject in set(subjects):
        mine = [flag for s, flag in zip(subjects, flags, strict=True) if s == subject]
        # 20 rows: 14 train minus the one at the cut, then 6 test, in order
        assert mine == [False] * 13 + [True] * 6


@pytest.mark.parametrize("name", BENCHMARKS)
def test_two_rounds_run_with_clients_missing_a_modality(name, flwr_env, tmp_path):
    task = get_task(name)
    a, b = task.modality_names
    source = write(task, tmp_path / "data.parquet", 48)
    outcome = run_app(
        APP,
        {
            "dataset": name,
            "data-source": str(source),
            "modality-mix": f"{a}=1,{b}=1,{a}+{b}=1",
            "num-server-rounds": 2,
            "local-epochs": 1,
            "batch-size": 8,
            "export-onnx": False,
        },
        num_supernodes=3,
        env=flwr_env,
        timeout=600,
    )
    assert outcome.ok, outcome.output[-3000:]
    [experiment] = Path(flwr_env["BLOSSOM_RESULTS_DIR"]).glob(f"{name}/iid/*/*/*")
    clients = read_rows(experiment / "run_0" / "client_metrics.csv")
    assert {r["modalities"] for r in clients} == {a, b, f"{a}+{b}"}
    assert all(r["accuracy"] for r in clients if r["round"] == "2")


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_grid_cell_preset_resolves_to_the_papers_setup(name):
    """``preset = "<partitioner>-<mix>-<policy>"`` reproduces one cell of the
    paper's grid; ``blossom sweep`` with the paper preset runs the very same
    resolved config."""
    cells = grid_presets(name)
    assert len(cells) == 2 * 3 * 3
    assert available_presets(name) == ["paper"]
    for cell in cells:
        chosen = {**DEFAULTS, "dataset": name, "preset": cell}
        resolved = resolve_preset(chosen, DEFAULTS)
        config = ExperimentConfig.from_run_config(resolved, DEFAULTS)
        assert config.task.name == name and config.preset == "paper"
        assert ExperimentConfig.from_run_config(chosen, DEFAULTS) == config
        assert (config.training.epochs, config.num_runs) == (1, 5)
        training = config.training
        recipe = (training.optimizer, training.learning_rate, training.weight_decay)
        assert recipe == PAPER_RECIPES[name]
        mix = resolved["modality-mix"]
        assert cell == f"{config.data.partitioner}-{mix}-{config.policy.name}"
        [swept] = SweepGrid(
            (name,), (config.data.partitioner,), (mix,), (config.policy.name,)
        ).cells(APP, Path("/results"), {"preset": "paper", "export-onnx": True})
        compared = {k: v for k, v in swept.resolved.items() if k != "results-dir"}
        assert compared == {k: v for k, v in resolved.items() if k != "results-dir"}


def test_other_column_names_are_mapped_with_data_columns(tmp_path):
    """Where the hub's column names are not known for sure, a user maps them."""
    task = get_task("ucihar")
    renamed = {"body_acc": "acc", "body_gyro": "gyro", "activity": "label"}
    data = write(task, tmp_path / "d.parquet", 30)
    table = datasets.Dataset.from_parquet(str(data))
    for new, old in {**renamed, "user": "subject"}.items():
        table = table.rename_column(old, new)
    table.to_parquet(str(tmp_path / "renamed.parquet"))
    mapping = "acc=body_acc, gyro=body_gyro, label=activity, group=user"
    config = ExperimentConfig.from_run_config(
        {**DEFAULTS, "dataset": "ucihar", "data-columns": mapping}
    )
    data = load_client_data(
        DataSettings(config.task, source=str(tmp_path / "renamed.parquet")),
        0,
        ("acc", "gyro"),
    )
    assert len(data.train) + len(data.test) == 30 - 3  # one window per subject dropped
    with pytest.raises(ConfigError, match="acc, gyro, label, group"):
        ExperimentConfig.from_run_config({**DEFAULTS, "data-columns": "accel=x"})
    with pytest.raises(DataError, match="data-columns"):
        load_client_data(
            DataSettings(get_task("ucihar"), source=str(tmp_path / "renamed.parquet")),
            0,
            ("acc",),
        )
