"""The data layer on real data: the embedded watch recordings and small files."""

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets
import numpy as np
import pytest

from blossom_app.benchmarks.watch import WATCH
from blossom_app.benchmarks.watch.embedded import (
    CLASS_NAMES,
    STEP,
    WINDOW,
    read_recordings,
    watch_file,
)
from blossom_app.data import (
    PARTITIONERS,
    DataSettings,
    assign_dataset,
    cache_dir,
    load_client_data,
    load_task_dataset,
    make_partitioner,
    split_dataset,
)
from blossom_app.errors import ConfigError, DataError

TEST_FRACTION = 0.3
CLIENT = dict(
    source="",
    partitioner="iid",
    num_partitions=10,
    alpha=0.5,
    seed=7,
    test_fraction=TEST_FRACTION,
)


def numpy_rows(dataset: datasets.Dataset, *columns: str) -> list[np.ndarray]:
    arrays = dataset.with_format("numpy", columns=list(columns))[:]
    return [arrays[column] for column in columns]


def tiny_dataset(n: int = 14, drop: str = "") -> datasets.Dataset:
    """``n`` random examples with watch's columns (no recordings), minus ``drop``."""
    rng = np.random.default_rng(0)
    columns = {
        "acc": rng.normal(size=(n, WINDOW, 3)).astype(np.float32),
        "gyro": rng.normal(size=(n, WINDOW, 3)).astype(np.float32),
        "label": np.arange(n) % len(CLASS_NAMES),
        "subject": np.arange(n) % 2 + 1,
    }
    columns.pop(drop, None)
    return datasets.Dataset.from_dict(columns)


@pytest.fixture(scope="module")
def split_watch(watch_dataset: datasets.Dataset) -> datasets.Dataset:
    return split_dataset(watch_dataset, TEST_FRACTION, seed=0, window=WINDOW)


# --- the embedded dataset -------------------------------------------------------


def test_watch_dataset_windows_every_recording(watch_dataset: datasets.Dataset):
    raw = read_recordings(watch_file())
    expected = sum((len(x) - WINDOW) // STEP + 1 for x in raw["X"])
    assert len(watch_dataset) == expected
    assert 3_500 < expected < 3_700
    assert watch_dataset.features["label"].names == list(CLASS_NAMES)
    acc, gyro, labels, subjects = numpy_rows(
        watch_dataset, "acc", "gyro", "label", "subject"
    )
    assert acc.shape == gyro.shape == (expected, WINDOW, 3)
    assert acc.dtype == gyro.dtype == np.float32
    assert set(labels.tolist()) == set(range(7))
    assert set(subjects.tolist()) == set(range(1, 11))
    row = watch_dataset.with_format("numpy")[1000]
    signal = raw["X"][row["recording"]][row["start"] : row["start"] + WINDOW]
    np.testing.assert_allclose(row["acc"], signal[:, :3], rtol=1e-6)
    np.testing.assert_allclose(row["gyro"], signal[:, 3:], rtol=1e-6)
    assert row["label"] == raw["y"][row["recording"]]


def test_embedded_build_survives_concurrent_builders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BLOSSOM_CACHE_DIR", str(tmp_path))
    task = dataclasses.replace(WATCH, name="watch-race")
    with ThreadPoolExecutor(4) as pool:
        sizes = list(pool.map(lambda _: len(load_task_dataset(task)), range(4)))
    assert len(set(sizes)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["watch-race-embedded"]


def test_corrupt_watch_file_is_refused(tmp_path: Path):
    path = tmp_path / "watch_dataset.npy"
    path.write_bytes(b"not the recordings")
    with pytest.raises(DataError, match="pip install seglearn==1.2.5"):
        read_recordings(path)


# --- loading local files --------------------------------------------------------


def test_missing_column_is_named(tmp_path: Path):
    path = tmp_path / "no-gyro.parquet"
    tiny_dataset(drop="gyro").to_parquet(str(path))
    client = {**CLIENT, "source": str(path), "num_partitions": 1}
    with pytest.raises(DataError, match="gyro") as error:
        load_client_data(DataSettings(WATCH, **client), 0, ("acc", "gyro"))
    assert "acc" in str(error.value)  # lists the columns the dataset does have


def test_a_device_dataset_needs_only_the_device_modalities(tmp_path: Path):
    path = tmp_path / "acc-only.parquet"
    tiny_dataset(n=20, drop="gyro").remove_columns("subject").to_parquet(str(path))
    client = {**CLIENT, "source": str(path), "num_partitions": 1}
    data = load_client_data(DataSettings(WATCH, **client), 0, ("acc",))
    assert len(data.train) + len(data.test) == 20
    with pytest.raises(DataError, match="subject"):
        natural = DataSettings(WATCH, **{**client, "partitioner": "natural"})
        load_client_data(natural, 0, ("acc",))


def test_a_dataset_without_any_modality_is_refused(tmp_path: Path):
    path = tmp_path / "labels-only.parquet"
    tiny_dataset().remove_columns(["acc", "gyro"]).to_parquet(str(path))
    with pytest.raises(DataError, match="none of the modality columns"):
        load_task_dataset(WATCH, str(path))


def test_wrong_shape_is_reported(tmp_path: Path):
    path = tmp_path / "short.parquet"
    short = tiny_dataset().map(lambda row: {"acc": np.asarray(row["acc"])[:64]})
    short.to_parquet(str(path))
    with pytest.raises(DataError, match=r"\(64, 3\)"):
        load_task_dataset(WATCH, str(path))


def test_parquet_file_directory_and_saved_dataset_load(tmp_path: Path):
    tiny = tiny_dataset()
    tiny.to_parquet(str(tmp_path / "one.parquet"))
    shards = tmp_path / "shards"
    shards.mkdir()
    for index in range(2):
        tiny.shard(2, index).to_parquet(str(shards / f"part-{index}.parquet"))
    tiny.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": tiny, "test": tiny.select(range(3))}).save_to_disk(
        str(tmp_path / "saved-dict")
    )
    for source in ("one.parquet", "shards", "saved", "saved-dict"):
        loaded = load_task_dataset(WATCH, str(tmp_path / source))
        (acc,) = numpy_rows(loaded, "acc")
        assert acc.shape == (len(tiny), WINDOW, 3), source


def test_unreachable_hub_id_raises_data_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match="no-such-owner/no-such-dataset"):
        load_task_dataset(WATCH, "no-such-owner/no-such-dataset")


def test_cache_dir_follows_environment(blossom_cache: Path):
    assert cache_dir() == blossom_cache


# --- train/test split ------------------------------------------------------------


def test_time_split_has_no_overlap(split_watch: datasets.Dataset):
    recordings, starts, is_test = numpy_rows(
        split_watch, "recording", "start", "is_test"
    )
    for recording in np.unique(recordings):
        mine = recordings == recording
        train_end = (starts[mine & ~is_test] + WINDOW).max()
        test_start = starts[mine & is_test].min()
        assert train_end <= test_start
    assert is_test.mean() == pytest.approx(TEST_FRACTION, abs=0.05)


def test_the_validation_split_is_cut_from_train_in_time_too(split_watch):
    """Adaptive personalization's validation windows share no samples with
    the training windows (nor with the test ones): each recording is
    validation, then train, then test, in time (the training windows stay next
    to the test ones); the test windows are unchanged."""
    from blossom_app.data.splits import TRAIN, UNUSED, VALIDATION, hold_out_validation

    held = hold_out_validation(split_watch, 0.2, seed=7, window=WINDOW)
    recordings, starts, is_test, holdout = numpy_rows(
        held, "recording", "start", "is_test", "holdout"
    )
    assert len(held) == len(split_watch)  # the same rows: the same partitions
    is_validation, unused = holdout == VALIDATION, holdout == UNUSED
    assert not (is_test & (is_validation | unused)).any()
    for recording in np.unique(recordings):
        mine = recordings == recording
        train, validation = mine & (holdout == TRAIN) & ~is_test, mine & is_validation
        if validation.any():  # a short recording's may all straddle a cut
            assert (starts[validation] + WINDOW).max() <= starts[train].min()
            assert (starts[train] + WINDOW).max() <= starts[mine & is_test].min()
    share = is_validation.sum() / (~is_test).sum()
    assert 0.1 < share < 0.2  # the first 20 % of the time: windows inside it
    assert unused.any()  # the windows straddling the cut
    held_out = DataSettings(WATCH, validation_fraction=0.2, **CLIENT)
    data = load_client_data(held_out, 1, ("acc",))
    assert len(data.validation) > 0 and len(data.train) > 3 * len(data.validation)
    fixed = load_client_data(DataSettings(WATCH, **CLIENT), 1, ("acc",))
    np.testing.assert_array_equal(data.test.labels, fixed.test.labels)


def test_independent_split_is_seeded_and_exact():
    tiny = tiny_dataset(20)
    first = numpy_rows(split_dataset(tiny, 0.25, seed=3, window=WINDOW), "is_test")[0]
    again = numpy_rows(split_dataset(tiny, 0.25, seed=3, window=WINDOW), "is_test")[0]
    assert first.sum() == 5
    np.testing.assert_array_equal(first, again)


def test_an_independent_split_spreads_test_examples_over_iid_clients():
    """The split and the partitioner's shuffle both derive from ``seed``: they
    must not draw the same permutation (that put every test example on the
    first client)."""
    split = split_dataset(tiny_dataset(60), 0.3, seed=0, window=WINDOW)
    for part in partitions("iid", split, 3, seed=0):
        assert 0 < sum(part["is_test"]) < len(part)


# --- partitioners --------------------------------------------------------------


def partitions(
    name: str, dataset: datasets.Dataset, n: int, seed: int = 1
) -> list[datasets.Dataset]:
    partitioner = make_partitioner(
        name, n, alpha=0.5, seed=seed, label_column="label", group_column="subject"
    )
    assign_dataset(partitioner, dataset, num_partitions=n, seed=seed)
    return [partitioner.load_partition(i) for i in range(n)]


@pytest.mark.parametrize("name", PARTITIONERS)
def test_partitions_are_disjoint_and_cover(name: str, split_watch: datasets.Dataset):
    def window_ids(dataset: datasets.Dataset) -> list[tuple[int, int]]:
        recordings, starts = numpy_rows(dataset, "recording", "start")
        return list(zip(recordings.tolist(), starts.tolist(), strict=True))

    parts = [window_ids(part) for part in partitions(name, split_watch, 10)]
    everything = [window for part in parts for window in part]
    assert len(everything) == len(set(everything))
    assert set(everything) == set(window_ids(split_watch))


def test_natural_partitions_are_subjects(split_watch: datasets.Dataset):
    subjects = [
        set(numpy_rows(p, "subject")[0].tolist())
        for p in partitions("natural", split_watch, 10)
    ]
    assert all(len(s) == 1 for s in subjects)
    assert set().union(*subjects) == set(range(1, 11))


def test_natural_needs_one_client_per_group(split_watch: datasets.Dataset):
    with pytest.raises(ConfigError, match="10 clients"):
        partitions("natural", split_watch, 4)


@pytest.mark.filterwarnings("ignore:The specified min_partition_size")
def test_impossible_dirichlet_asks_for_larger_alpha(split_watch: datasets.Dataset):
    partitioner = make_partitioner(
        "dirichlet", 10, alpha=0.01, seed=0, label_column="label", group_column=None
    )
    with pytest.raises(ConfigError, match="dirichlet-alpha"):
        assign_dataset(partitioner, split_watch, num_partitions=10, seed=0)


# --- one client's arrays ---------------------------------------------------------


def test_client_gets_only_its_modalities():
    data = load_client_data(DataSettings(WATCH, **CLIENT), 3, ("acc",))
    for split in (data.train, data.test):
        assert list(split.inputs) == ["acc"]
        assert split.inputs["acc"].shape == (len(split), WINDOW, 3)
        assert split.inputs["acc"].dtype == np.float32
        assert split.labels.dtype == np.int64
        assert split.labels.min() >= 0 and split.labels.max() < len(CLASS_NAMES)
    assert len(data.train) > len(data.test) > 0


@pytest.mark.parametrize("name", PARTITIONERS)
def test_clients_leave_the_source_data_untouched(
    name: str, watch_dataset: datasets.Dataset
):
    before = sorted(p.name for p in (cache_dir() / "watch-embedded").iterdir())
    settings = {**CLIENT, "partitioner": name}
    load_client_data(DataSettings(WATCH, **settings), 0, ("acc", "gyro"))
    after = sorted(p.name for p in (cache_dir() / "watch-embedded").iterdir())
    assert after == before


def test_a_device_with_its_own_data_trains_on_all_of_it_whatever_its_name(
    tmp_path: Path,
):
    from flwr.app import Context, RecordDict
    from rounds import RUN_CONFIG

    from blossom_app.client.local_client import LocalClient

    path = tmp_path / "device.parquet"
    tiny_dataset(n=20, drop="gyro").to_parquet(str(path))
    node = {"data-path": str(path), "modalities": "acc", "partition-id": 7}
    context = Context(1, 9, node, RecordDict(), {**RUN_CONFIG, "modality-mix": "acc=1"})
    client = LocalClient.from_context(context)
    assert len(client.data.train) + len(client.data.test) == 20
    profile = client.profile()
    assert (profile.partition_id, profile.modalities) == (7, ("acc",))


def test_a_clients_arrays_are_cached_and_read_back_without_hf_datasets():
    """A second process reads the cached arrays with numpy alone: neither
    ``datasets`` nor ``flwr_datasets`` is imported (start-up and memory of every
    simulated client process)."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np\n"
        "from blossom_app.benchmarks.watch import WATCH\n"
        "from blossom_app.data import DataSettings, load_client_data\n"
        f"data = load_client_data(DataSettings(WATCH, **{CLIENT!r}), 4, ('gyro',))\n"
        "print(sorted({'datasets', 'flwr_datasets'} & set(sys.modules)))\n"
        "print(float(data.train.inputs['gyro'].sum()), int(data.test.labels.sum()))\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        for _ in range(2)
    ]
    assert runs[0][0] == "['datasets', 'flwr_datasets']"  # computed, then cached
    assert runs[1][0] == "[]"  # read back
    assert runs[1][1] == runs[0][1]
    direct = load_client_data(DataSettings(WATCH, **CLIENT), 4, ("gyro",))
    assert runs[0][1].split()[1] == str(int(direct.test.labels.sum()))


def test_a_local_source_changed_on_disk_is_read_again(tmp_path: Path):
    path = tmp_path / "device.parquet"
    settings = {**CLIENT, "num_partitions": 1, "source": str(path)}
    tiny_dataset(n=20).to_parquet(str(path))
    first = load_client_data(DataSettings(WATCH, **settings), 0, ("acc",))
    tiny_dataset(n=30).to_parquet(str(path))
    second = load_client_data(DataSettings(WATCH, **settings), 0, ("acc",))
    assert len(first.train) + len(first.test) == 20
    assert len(second.train) + len(second.test) == 30
