"""The checkpoint file and the checks before a resume, without running Flower:
a real experiment directory (config.toml written as a run writes it, and a
checkpoint written by a real ``ServerState`` advanced to round 3) in tmp_path.

- ``save`` then ``load`` gives back every part of the state, nodes renamed by
  partition; a partition that is not the client it was, or two nodes claiming
  one partition, is refused.
- Each bad input (truncated, corrupt, of another experiment, of a newer schema,
  missing, a changed config, a ``resume`` that points at nothing, or at a
  finished experiment) gets an error naming the problem and the fix, before
  anything starts (docs/reliability.md, "Bad input and the error it gets").
- A second checkpoint replaces the first atomically.
"""

import json
import random
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, MessageType, MetricRecord
from rounds import NODES, WATCH, profiles

from blossom_app.common import metrics as m
from blossom_app.common.config import ServerOptimizerSettings
from blossom_app.common.model import build_model
from blossom_app.common.presets import app_defaults
from blossom_app.common.profile import NodeProfile
from blossom_app.errors import ConfigError
from blossom_app.reporting.layout import CHECKPOINT, COMPLETED_MARKER, CONFIG
from blossom_app.reporting.output import write_config
from blossom_app.server.checkpoint import (
    HEADER,
    SCHEMA,
    CheckpointError,
    read_checkpoint,
)
from blossom_app.server.resume import ResumePoint, find_resume
from blossom_app.server.server_optimizers import ServerOptimizer
from blossom_app.server.server_state import ServerState
from blossom_app.tools import cli

APP = Path(__file__).resolve().parents[1]
DEFAULTS = app_defaults(APP)
RUN_CONFIG = {
    **DEFAULTS,
    "modality-mix": "1-1-1",
    "num-server-rounds": 6,
    "aggregation": "private-head-fusion",
    "server-optimizer": "fedadam",
    "seed": 42,
}
#: The same three partitions held by other node ids (a restarted simulation).
RENAMED = {101: 201, 102: 202, 103: 203}
#: A node that is in no profile (its rejection row keeps its id).
STRANGER = 999


def optimizer() -> ServerOptimizer:
    return ServerOptimizer(ServerOptimizerSettings("fedadam"))


def profiles_now(**changes: dict) -> dict[int, NodeProfile]:
    """``rounds.profiles()`` under the RENAMED node ids; ``changes``: node
    (``n101``) -> fields that differ now."""
    now = {}
    for node_id, profile in profiles().items():
        fields = {**vars(profile), "node_id": RENAMED[node_id]}
        fields |= changes.get(f"n{node_id}", {})
        now[RENAMED[node_id]] = NodeProfile(**fields)
    return now


@pytest.fixture(scope="module")
def initial() -> ArrayRecord:
    """The model's real initial arrays, and an int64 one (dtypes must survive)."""
    arrays = ArrayRecord(
        build_model(WATCH, WATCH.modality_names, "attention", 42).state_dict()
    )
    arrays["tracked.count"] = Array(np.arange(6, dtype=np.int64).reshape(2, 3))
    return arrays


def evaluation(seed: int, examples: int) -> MetricRecord:
    """An evaluate reply's metrics as the ClientApp sends them
    (``training.Evaluation.to_metrics``): a real confusion matrix, flattened."""
    labels = np.random.default_rng(seed).integers(0, WATCH.num_classes, (2, examples))
    confusion = np.zeros((WATCH.num_classes,) * 2, dtype=np.int64)
    np.add.at(confusion, (labels[0], labels[1]), 1)
    return MetricRecord(
        {
            m.TEST_EXAMPLES: examples,
            m.TEST_LOSS: 1.25 + seed / 7,
            m.ACCURACY: m.accuracy(confusion),
            m.MACRO_F1: m.macro_f1(confusion),
            m.CONFUSION: confusion.ravel().tolist(),
        }
    )


def advanced(initial: ArrayRecord, server_round: int = 3) -> ServerState:
    """A real state of run 1 after ``server_round`` rounds: arrays moved by
    FedAdam (first and second moments, steps 2 or 1 per key), the sampling rng
    drawn from (a Gaussian cached too), nodes drawn ahead, evaluations pending
    and rows of every kind recorded."""
    state = ServerState.fresh(
        profiles(), run_index=1, arrays=initial, optimizer=optimizer(), seed=42
    )
    state.server_round = server_round
    noise = np.random.default_rng(server_round)
    current = {key: array.numpy() for key, array in initial.items()}
    floats = [k for k, v in current.items() if np.issubdtype(v.dtype, np.floating)]
    for trained in (floats, floats[::2]):  # some keys sat one round out
        averaged = {
            k: current[k] + noise.normal(0, 0.01, current[k].shape).astype(np.float32)
            for k in trained
        }
        current = state.optimizer.step(current, averaged, trained)
    state.arrays = ArrayRecord({k: Array(v) for k, v in current.items()})
    state.rng.sample(sorted(NODES), 2)
    state.rng.gauss(0.0, 1.0)  # leaves the next Gaussian cached in the state
    state.drawn = {server_round + 1: [103, 101], server_round + 2: [102]}

    record = state.record
    for rnd in range(1, server_round + 1):
        for node_id in NODES:
            record.train.append(
                record.client_row(rnd, node_id, train_examples=100, train_loss=rnd / 3)
            )
            record.traffic(rnd, node_id, "train", "down", initial)
        record.timing[rnd] |= {"train": 1.5 * rnd, "evaluate": 0.25}
        record.aggregated[rnd] |= {m.TRAIN_LOSS: rnd / 3, m.TRAIN_CLIENTS: 3}
    record.reject(2, MessageType.TRAIN, 102, "no reply")
    record.reject(2, MessageType.TRAIN, STRANGER, "not in this run")
    record.models.append(record.client_row(2, 103, status="written"))
    for node_id, seed in ((101, 1), (103, 2)):  # round 2: evaluated, summarized
        state.evaluations.collect(2, node_id, evaluation(seed, 30))
    state.evaluations.summarize(2)
    # the last round's evaluations: pending until the next train replies
    state.evaluations.collect(server_round, 101, evaluation(3, 30))
    state.evaluations.collect(server_round, 103, evaluation(4, 29))
    state.evaluations.collect(server_round, 102, MetricRecord({m.TEST_EXAMPLES: 30}))
    assert len(state.evaluations.pending[server_round]) == 2
    return state


@pytest.fixture
def experiment(tmp_path: Path, initial: ArrayRecord) -> Path:
    """An unfinished experiment directory: its config.toml and a checkpoint
    after round 3 of run 1."""
    directory = tmp_path / "watch" / "iid" / "1-1-1" / "private-head-fusion" / "t0"
    directory.mkdir(parents=True)
    write_config(directory / CONFIG, RUN_CONFIG)
    advanced(initial).save(directory / CHECKPOINT, RUN_CONFIG)
    return directory


def resume_config(directory: Path, **changes: object) -> dict:
    """This run's config as ``blossom run --resume`` makes it."""
    return {**RUN_CONFIG, "resume": str(directory), **changes}


def renamed(rows: list[dict]) -> list[dict]:
    return [
        {**row, "node_id": RENAMED.get(row["node_id"], row["node_id"])} for row in rows
    ]


# --- round trip --------------------------------------------------------------


def test_save_then_load_gives_back_every_part_of_the_state(tmp_path, initial):
    state = advanced(initial)
    path = tmp_path / CHECKPOINT
    size = state.save(path, RUN_CONFIG)
    assert size == path.stat().st_size

    loaded = ServerState.load(path, profiles_now(), optimizer())

    assert (loaded.run_index, loaded.server_round) == (1, 3)
    # global arrays: bitwise, same dtypes, same order
    assert list(loaded.arrays) == list(state.arrays)
    for key, array in state.arrays.items():
        got, want = loaded.arrays[key].numpy(), array.numpy()
        assert got.dtype == want.dtype and got.shape == want.shape, key
        assert got.tobytes() == want.tobytes(), key
    assert loaded.arrays["tracked.count"].numpy().dtype == np.int64
    # the optimizer's moments and steps
    for name in ("first", "second"):
        saved, restored = (
            getattr(state.optimizer, name),
            getattr(loaded.optimizer, name),
        )
        assert saved and restored.keys() == saved.keys(), name
        for key, value in saved.items():
            assert restored[key].dtype == value.dtype, (name, key)
            assert restored[key].tobytes() == value.tobytes(), (name, key)
    assert loaded.optimizer.steps == state.optimizer.steps
    assert set(loaded.optimizer.steps.values()) == {1, 2}
    # sampling goes on as it would have (the cached Gaussian first)
    assert [loaded.rng.gauss(0.0, 1.0), loaded.rng.random()] == [
        state.rng.gauss(0.0, 1.0),
        state.rng.random(),
    ]
    assert loaded.rng.sample(range(100), 10) == state.rng.sample(range(100), 10)
    # nodes drawn ahead, now by their new ids
    assert loaded.drawn == {4: [201, 203], 5: [202]}
    # pending evaluations, with their confusion matrices
    assert loaded.evaluations.pending.keys() == {3}
    for got, want in zip(
        loaded.evaluations.pending[3], state.evaluations.pending[3], strict=True
    ):
        assert got[:2] == want[:2]
        assert got[2].dtype == np.int64
        np.testing.assert_array_equal(got[2], want[2])
    assert loaded.evaluations.record is loaded.record
    # every row, nodes renamed by partition (a node in no profile keeps its id)
    for name in ("train", "evaluate", "communication", "rejections", "models"):
        rows = getattr(state.record, name)
        assert rows, name
        assert getattr(loaded.record, name) == renamed(rows), name
    assert [r["node_id"] for r in loaded.record.rejections] == [202, STRANGER, 202]
    for name in ("timing", "aggregated"):
        by_round = getattr(loaded.record, name)
        assert all(isinstance(r, int) for r in by_round), name
        assert dict(by_round) == dict(getattr(state.record, name)), name
    assert loaded.record.aggregated[2][m.TEST_CLIENTS] == 2
    assert loaded.record.profiles == profiles_now()


@pytest.mark.parametrize(
    "node, changed, named",
    [
        (102, {"modalities": ("acc",)}, "modalities ('gyro',) then, ('acc',) now"),
        (101, {"train_examples": 90}, "train_examples 100 then, 90 now"),
        (103, {"test_examples": 31}, "test_examples 30 then, 31 now"),
    ],
)
def test_a_partition_that_holds_other_data_now_is_refused(
    tmp_path, initial, node, changed, named
):
    path = tmp_path / CHECKPOINT
    advanced(initial).save(path, RUN_CONFIG)
    partition = profiles()[node].partition_id
    with pytest.raises(CheckpointError) as error:
        ServerState.load(path, profiles_now(**{f"n{node}": changed}), optimizer())
    message = str(error.value)
    assert f"Partition {partition} is not the client it was" in message
    assert named in message
    assert "Resume with the same data and node config." in message


def test_a_node_on_another_device_or_version_is_the_same_client(tmp_path, initial):
    path = tmp_path / CHECKPOINT
    advanced(initial).save(path, RUN_CONFIG)
    now = profiles_now(n101={"device": "cuda:0", "version": "0.1.1"})
    assert ServerState.load(path, now, optimizer()).drawn[4] == [201, 203]


def test_two_nodes_claiming_one_partition_are_refused(tmp_path, initial):
    path = tmp_path / CHECKPOINT
    advanced(initial).save(path, RUN_CONFIG)
    now = profiles_now(n102={"partition_id": 0})
    with pytest.raises(CheckpointError) as error:
        ServerState.load(path, now, optimizer())
    message = str(error.value)
    assert "Nodes 201 and 202 both say they are partition 0" in message
    assert "Give each SuperNode its own partition-id." in message


# --- bad input -----------------------------------------------------------------

DAMAGED = "truncated or corrupt"
DAMAGE_FIX = "restore it from a copy, or start the run again without resume"


def test_a_truncated_checkpoint_names_the_damage_and_the_fix(experiment):
    path = experiment / CHECKPOINT
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as error:
        find_resume(str(experiment), resume_config(experiment), DEFAULTS)
    message = str(error.value)
    assert f"The checkpoint {path} is {DAMAGED}" in message
    assert DAMAGE_FIX in message
    with pytest.raises(CheckpointError, match=DAMAGED):
        ServerState.load(path, profiles_now(), optimizer())


def _central(data: bytearray, offset: int, value: int) -> None:
    """Set a 2-byte field of every zip central directory entry."""
    entry = data.find(b"PK\x01\x02")
    while entry >= 0:
        struct.pack_into("<H", data, entry + offset, value)
        entry = data.find(b"PK\x01\x02", entry + 4)


def _garbage_in_the_middle(data: bytearray) -> None:
    middle = len(data) // 2
    data[middle : middle + 64] = random.Random(0).randbytes(64)


def _garbage_in_an_array_header(data: bytearray) -> None:
    start = data.find(b"\x93NUMPY") + 10  # the header member's .npy dict
    data[start : start + 6] = b"(((((("


CORRUPTIONS = {
    # each escaped as another exception type before _read caught them all
    "garbage in the middle": (_garbage_in_the_middle, "Bad CRC-32"),
    "garbage in an array header": (_garbage_in_an_array_header, "EOF"),
    "an unknown compression method": (lambda d: _central(d, 10, 99), "compression"),
    "an encryption flag": (lambda d: _central(d, 8, 1), "encrypted"),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_corrupt_checkpoint_names_the_damage_and_the_fix(experiment, corruption):
    corrupt, cause = CORRUPTIONS[corruption]
    path = experiment / CHECKPOINT
    data = bytearray(path.read_bytes())
    corrupt(data)
    path.write_bytes(bytes(data))
    for read in (
        lambda: read_checkpoint(path),
        lambda: ServerState.load(path, profiles_now(), optimizer()),
    ):
        with pytest.raises(CheckpointError) as error:
            read()
        message = str(error.value)
        assert f"The checkpoint {path} is {DAMAGED} (" in message
        assert cause in message
        assert DAMAGE_FIX in message


def test_a_checkpoint_of_another_experiment_is_refused(experiment, initial):
    advanced(initial).save(experiment / CHECKPOINT, {**RUN_CONFIG, "seed": 7})
    with pytest.raises(CheckpointError) as error:
        find_resume(str(experiment), resume_config(experiment), DEFAULTS)
    message = str(error.value)
    assert f"{experiment / CHECKPOINT} belongs to another experiment" in message
    assert f"not the one in {experiment / CONFIG}" in message
    assert "Put back that experiment's checkpoint, or start the run again" in message


def test_a_checkpoint_of_a_newer_schema_is_refused(experiment):
    path = experiment / CHECKPOINT
    header, arrays = read_checkpoint(path)
    header |= {"schema": SCHEMA + 1, "version": "9.0.0"}
    text = json.dumps(header).encode("utf-8")
    with path.open("wb") as handle:  # a newer BLOSSOM's file
        np.savez(handle, **{HEADER: np.frombuffer(text, np.uint8)}, **arrays)
    with pytest.raises(CheckpointError) as error:
        find_resume(str(experiment), resume_config(experiment), DEFAULTS)
    message = str(error.value)
    assert f"has schema {SCHEMA + 1}, written by BLOSSOM 9.0.0" in message
    assert f"reads schema {SCHEMA} and older" in message
    assert "Resume it with the newer version." in message


def test_a_missing_checkpoint_names_the_cause_and_the_fix(experiment):
    (experiment / CHECKPOINT).unlink()
    with pytest.raises(CheckpointError) as error:
        find_resume(str(experiment), resume_config(experiment), DEFAULTS)
    message = str(error.value)
    assert f"No checkpoint at {experiment / CHECKPOINT}" in message
    assert "checkpoint-every = 0" in message
    assert "Start it again without resume." in message


def test_a_changed_config_names_each_key_with_both_values(experiment):
    changed = resume_config(
        experiment, **{"num-server-rounds": 8, "aggregation": "full-model"}
    )
    with pytest.raises(CheckpointError) as error:
        find_resume(str(experiment), changed, DEFAULTS)
    message = str(error.value)
    assert f"This run's config is not the one {experiment} ran with" in message
    assert "num-server-rounds: checkpoint 6, this run 8" in message
    assert 'aggregation: checkpoint "private-head-fusion", this run "full-model"' in (
        message
    )
    assert message.count("this run ") == 2  # no other key
    assert "Resume with the same config" in message
    assert "Keys that may differ: resume, round-timeout, checkpoint-every" in message


def test_a_changed_round_timeout_alone_is_accepted(experiment):
    point = find_resume(
        str(experiment), resume_config(experiment, **{"round-timeout": 30.0}), DEFAULTS
    )
    assert point == ResumePoint(experiment.resolve(), 1, 3)
    assert point.checkpoint == experiment.resolve() / CHECKPOINT


def test_resume_pointing_at_nothing_names_resume(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for target in (tmp_path / "no-such-dir", empty):
        with pytest.raises(ConfigError) as error:
            find_resume(str(target), resume_config(target), DEFAULTS)
        assert error.value.key == "resume"
        message = str(error.value)
        assert f"Invalid value for 'resume': '{target}'" in message
        assert "a BLOSSOM results directory (one holding config.toml)" in message
        assert "'BLOSSOM results directory: ...'" in message
        assert cli.main(["run", str(APP), "--resume", str(target)]) == 2
        assert "Invalid value for 'resume'" in capsys.readouterr().err


def files(directory: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*")}


@pytest.mark.timeout(60)
def test_resume_of_a_finished_experiment_starts_nothing(experiment, capsys):
    (experiment / COMPLETED_MARKER).write_text("round\n")
    point = find_resume(str(experiment), resume_config(experiment), DEFAULTS)
    assert point.finished and point.path == experiment.resolve()

    before = files(experiment.parent)
    start = time.perf_counter()
    code = cli.main(["run", str(APP), "--resume", str(experiment)])
    seconds = time.perf_counter() - start
    out = capsys.readouterr().out
    assert code == 0
    assert f"{experiment.resolve()} finished already: nothing to resume" in out
    assert "Resuming" not in out
    assert files(experiment.parent) == before
    assert seconds < 5


@pytest.mark.timeout(60)
def test_the_cli_refuses_a_truncated_checkpoint_before_starting(experiment, capsys):
    path = experiment / CHECKPOINT
    path.write_bytes(path.read_bytes()[:1000])
    before = files(experiment.parent)
    assert cli.main(["run", str(APP), "--resume", str(experiment)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"blossom run: The checkpoint {path.resolve()}")
    assert DAMAGED in captured.err and DAMAGE_FIX in captured.err
    assert "Resuming" not in captured.out
    assert files(experiment.parent) == before


# --- atomic replace -------------------------------------------------------------


def test_a_second_checkpoint_replaces_the_first_atomically(experiment, initial):
    path = experiment / CHECKPOINT
    second = advanced(initial, server_round=4)
    second.save(path, RUN_CONFIG)
    assert sorted(p.name for p in experiment.iterdir()) == [CHECKPOINT, CONFIG]
    loaded = ServerState.load(path, profiles(), optimizer())
    assert loaded.server_round == 4
    assert loaded.drawn == {5: [101, 103], 6: [102]}
    first = advanced(initial).arrays
    for key, array in second.arrays.items():
        assert loaded.arrays[key].numpy().tobytes() == array.numpy().tobytes(), key
    assert any(
        loaded.arrays[key].numpy().tobytes() != array.numpy().tobytes()
        for key, array in first.items()
    )
    assert find_resume(str(experiment), resume_config(experiment), DEFAULTS) == (
        ResumePoint(experiment.resolve(), 1, 4)
    )
