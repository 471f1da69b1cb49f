"""Bad input gets one clear error (or warning) naming the problem and the fix:
NaN in a dataset, an empty partition, a one-class partition, a node running an
incompatible app version. Each is a row of docs/reliability.md."""

import logging
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pytest
from flwr.app import ArrayRecord, Context, RecordDict
from rounds import NODES, RUN_CONFIG, WATCH, LocalGrid, contexts, profiles
from test_data import CLIENT, tiny_dataset

import blossom_app
from blossom_app.client import local_client
from blossom_app.client.local_client import LocalClient
from blossom_app.client.personalization import choose_blocks
from blossom_app.common.modality_mix import parse_mix
from blossom_app.common.training import TrainingSettings
from blossom_app.data import DataSettings, load_client_data, load_task_dataset
from blossom_app.errors import DataError
from blossom_app.server.fleet import (
    DiscoveryError,
    Fleet,
    SetupProblem,
    compatible,
    discover_nodes,
    leave_out_incompatible,
    warn_if_few_steps,
)

ACC, GYRO, BOTH = NODES
MAJOR, MINOR, *_ = blossom_app.__version__.split(".")
NEXT_MINOR = f"{MAJOR}.{int(MINOR) + 1}.0"  # what another release would report


# --- NaN and inf in a dataset ------------------------------------------------------


def test_nan_or_inf_in_a_dataset_names_column_rows_and_fix(tmp_path: Path):
    columns = tiny_dataset(n=14).with_format("numpy")[:]
    columns["gyro"][[2, 5], 7, 1] = np.nan  # a gap in a recording
    columns["gyro"][11, 0, 2] = np.inf  # an overflow
    path = tmp_path / "gaps.parquet"
    datasets.Dataset.from_dict(columns).to_parquet(str(path))
    settings = DataSettings(WATCH, **{**CLIENT, "source": str(path)})
    with pytest.raises(DataError) as error:
        load_client_data(settings, 0, ("acc",))  # any client: the dataset is bad
    message = str(error.value)
    assert "Column 'gyro' (modality 'gyro')" in message and str(path) in message
    assert "in 3 of 14 rows (rows 2, 5, 11, counted from 0)" in message
    assert "impute" in message and "drop them" in message


def test_a_clean_dataset_is_checked_once_per_process(tmp_path: Path):
    path = tmp_path / "clean.parquet"
    tiny_dataset(n=14).to_parquet(str(path))
    first = load_task_dataset(WATCH, str(path))
    assert load_task_dataset(WATCH, str(path)) is first  # loaded, checked: cached


# --- an empty partition ----------------------------------------------------------


@pytest.mark.parametrize(
    ("clients", "partition", "counts", "fix"),
    [
        (10, 0, "2 train and 0 test", ", or a larger test-fraction (now 0.3)"),
        (10, 9, "0 train and 1 test", ", or a smaller test-fraction (now 0.3)"),
        (20, 15, "0 train and 0 test", ""),  # more clients than rows
    ],
)
def test_an_empty_partition_names_partition_partitioner_counts_and_fix(
    tmp_path: Path, clients: int, partition: int, counts: str, fix: str
):
    path = tmp_path / "few.parquet"
    tiny_dataset(n=14).to_parquet(str(path))
    client = {**CLIENT, "source": str(path), "num_partitions": clients}
    with pytest.raises(DataError) as error:
        load_client_data(DataSettings(WATCH, **client), partition, ("acc",))
    message = str(error.value)
    assert message.startswith(
        f"Partition {partition} of {clients} ('iid' partitioner, 14 rows in the "
        f"dataset) has {counts} examples; a client needs at least one of each."
    )
    assert message.endswith(f"Use fewer clients (modality-mix){fix}.")


def test_an_empty_dirichlet_partition_asks_for_a_larger_alpha(tmp_path: Path):
    path = tmp_path / "skewed.parquet"
    tiny_dataset(n=40).to_parquet(str(path))
    client = {**CLIENT, "source": str(path), "num_partitions": 4}
    dirichlet = DataSettings(WATCH, **{**client, "partitioner": "dirichlet"})
    with pytest.raises(DataError) as error:
        load_client_data(replace(dirichlet, alpha=0.3), 1, ("acc",))
    assert str(error.value).endswith(
        "has 5 train and 0 test examples; a client needs at least one of each. Use "
        "fewer clients (modality-mix), or a larger dirichlet-alpha (now 0.3), or a "
        "larger test-fraction (now 0.3), or the iid partitioner."
    )


# --- a partition of one class ----------------------------------------------------


def test_a_one_class_partition_is_warned_about_once_and_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    path = tmp_path / "skewed.parquet"
    tiny_dataset(n=40).to_parquet(str(path))
    run_config = {
        **RUN_CONFIG,
        "data-source": str(path),
        "partitioner": "dirichlet",
        "dirichlet-alpha": 0.1,
        "seed": 7,
        "modality-mix": "acc=3",
    }
    node = {"partition-id": 0, "num-partitions": 3}
    with caplog.at_level(logging.WARNING, logger="flwr"):
        for _ in range(2):  # two messages, one load
            client = LocalClient.from_context(
                Context(1, 11, node, RecordDict(), run_config)
            )
    [warning] = [r for r in caplog.records if "can only learn" in r.getMessage()]
    [label] = set(client.data.train.labels.tolist())
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == (
        f"Partition 0 of 3 ('dirichlet' partitioner): all "
        f"{len(client.data.train)} train examples are of class "
        f"'{WATCH.class_names[label]}', so its model can only learn to predict "
        "that class; use a larger dirichlet-alpha (now 0.1) for less skew."
    )
    assert client.profile().train_examples == len(client.data.train)  # runs on


def test_a_client_with_no_validation_windows_warns_and_keeps_the_federations_blocks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """Adaptive personalization (the default) on a client too small for a
    validation split: a warning naming the fix, and the client runs on with
    the federation's blocks (no evidence: never an own block)."""
    path = tmp_path / "tiny.parquet"
    tiny_dataset(n=10).to_parquet(str(path))
    run_config = {
        **RUN_CONFIG,
        "data-source": str(path),
        "aggregation": "full-model",
        "personalization": "adaptive",
        "validation-fraction": 0.05,  # of 7 train windows: none
        "modality-mix": "acc=1",
    }
    node = {"partition-id": 0, "num-partitions": 1}
    context = Context(1, 12, node, RecordDict(), run_config)
    with caplog.at_level(logging.WARNING, logger="flwr"):
        client = LocalClient.from_context(context)
    assert len(client.data.validation) == 0 and len(client.data.train) > 0
    [warning] = [r for r in caplog.records if "no validation" in r.getMessage()]
    assert warning.getMessage() == (
        f"Partition 0 of 1 has {len(client.data.train)} train windows and no "
        "validation windows, so adaptive personalization keeps the federation's "
        "blocks for it; use a larger validation-fraction (now 0.05) or fewer clients "
        "(modality-mix) for it to choose."
    )
    model = client.personalized_model(0, ArrayRecord(), None)
    own = {k: v.clone() for k, v in model.state_dict().items()}
    for value in own.values():
        value.add_(1.0)  # an own version of every block that differs
    chosen = choose_blocks(model, own, ["head"], client._validation_losses)
    assert chosen == frozenset()  # no evidence without validation windows


# --- clients too small for the recipe -----------------------------------------------


def test_a_run_whose_clients_make_few_steps_says_so_and_what_to_set(
    caplog: pytest.LogCaptureFixture,
):
    """Fewer windows than a batch make one step per epoch (issue 26: 15
    windows, 3 epochs of batch 16, 60 rounds: 180 steps, accuracy 0.46)."""
    acc, gyro, both = profiles().values()
    fleet = {
        p.node_id: replace(p, train_examples=n)
        for p, n in ((acc, 15), (gyro, 40), (both, 400))
    }
    recipe = TrainingSettings(epochs=3, batch_size=16, num_rounds=60)
    with caplog.at_level(logging.WARNING, logger="flwr"):
        warn_if_few_steps(fleet, recipe)
    [warning] = caplog.records
    assert warning.getMessage() == (
        "2 of 3 clients make fewer than 10 optimizer steps per round. The "
        f"smallest, partition {acc.partition_id}, has 15 training windows: 3 local "
        "epoch(s) of batch 16 (min-local-steps 0) make 3 step(s) per round, 180 in "
        "60 rounds, too few to learn from. Set a minimum "
        '(--run-config "min-local-steps=20") or more local-epochs.'
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flwr"):  # what it says to set
        warn_if_few_steps(fleet, replace(recipe, min_steps=20))
    assert caplog.records == []


# --- a node running another app version ------------------------------------------


def test_compatible_versions_share_major_and_minor():
    assert compatible("0.1.0", "0.1.7") and compatible("1.4", "1.4.2")
    assert not compatible("0.1.0", "0.2.0")
    assert not compatible("1.1.0", "0.1.0")


def test_a_node_of_another_version_is_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
):
    acc, gyro, both = profiles().values()
    gyro = replace(gyro, version=NEXT_MINOR)
    both = replace(both, version=f"{MAJOR}.{MINOR}.99")  # a patch release
    with caplog.at_level(logging.WARNING, logger="flwr"):
        kept, left_out = leave_out_incompatible([acc, gyro, both])
    assert kept == [acc, both]
    assert left_out == {
        GYRO: f"node {GYRO} runs blossom-app {NEXT_MINOR}, the server "
        f"{blossom_app.__version__}"
    }
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert f"Node {GYRO} runs blossom-app {NEXT_MINOR}" in warning.getMessage()
    assert "Install the same app version on the node" in warning.getMessage()


@pytest.mark.timeout(120)
def test_too_few_nodes_of_this_version_names_the_ones_left_out(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(local_client, "__version__", NEXT_MINOR)  # every node's
    with pytest.raises(DiscoveryError) as error:
        discover_nodes(LocalGrid(), min_nodes=3, timeout=0)
    message = str(error.value)
    assert message.startswith("Only 0 of 3 nodes connected within 0 s. Left out: ")
    assert f"node {ACC} runs blossom-app {NEXT_MINOR}, the server" in message
    assert f"install blossom-app {blossom_app.__version__} on those nodes" in message


@pytest.mark.timeout(120)
def test_a_joining_node_of_another_version_is_refused_like_a_set_the_mix_lacks(
    monkeypatch: pytest.MonkeyPatch,
):
    known = {n: p for n, p in profiles().items() if n != GYRO}
    fleet = Fleet(known, parse_mix("1-1-1", WATCH), timeout=60)
    monkeypatch.setattr(local_client, "__version__", NEXT_MINOR)  # its install
    for _ in range(2):  # profiled once, then left out without asking again
        assert fleet.present(LocalGrid()) == ([ACC, BOTH], [])
    assert GYRO not in fleet.profiles and fleet._refused == {GYRO}


@pytest.mark.timeout(120)
def test_node_setup_problems_are_said_once_each_by_the_server():
    nodes = contexts()
    for node_id, device in ((ACC, "tpu"), (GYRO, "tpu"), (BOTH, "cuda:99")):
        nodes[node_id].node_config["device"] = device

    with pytest.raises(SetupProblem) as error:
        discover_nodes(LocalGrid(nodes), min_nodes=3, timeout=60)

    lines = str(error.value).splitlines()
    assert len(lines) == 2  # two problems, each once
    assert lines[0].startswith("2 of the 3 nodes report: Invalid value for 'device'")
    assert "'tpu'" in lines[0]
    assert lines[1].startswith("1 of the 3 nodes report: Invalid value for 'device'")
    assert list(error.value.problems.values()) == [[ACC, GYRO], [BOTH]]


def test_many_distinct_setup_problems_are_cut_to_a_few_and_counted():
    problems = {f"Partition {i} has no test examples.": [100 + i] for i in range(40)}

    lines = str(SetupProblem(problems, asked=1000)).splitlines()

    assert len(lines) == SetupProblem.SHOWN_PROBLEMS + 1
    assert lines[0] == "1 of the 1000 nodes report: Partition 0 has no test examples."
    assert lines[-1].startswith("… and 37 other problem(s) from 37 more node(s)")


@pytest.mark.timeout(120)
def test_a_joining_node_that_cannot_set_up_is_left_out_with_its_problem(
    caplog: pytest.LogCaptureFixture,
):
    known = {n: p for n, p in profiles().items() if n != GYRO}
    nodes = contexts()
    nodes[GYRO].node_config["device"] = "tpu"
    fleet = Fleet(known, parse_mix("1-1-1", WATCH), timeout=60)

    with caplog.at_level(logging.WARNING, logger="flwr"):
        for _ in range(2):  # told once, then left out without asking again
            assert fleet.present(LocalGrid(nodes)) == ([ACC, BOTH], [])

    [warning] = caplog.records
    assert f"New node(s) [{GYRO}] left out of this run" in warning.getMessage()
    assert "Invalid value for 'device': 'tpu'" in warning.getMessage()
