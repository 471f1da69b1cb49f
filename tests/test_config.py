"""Config validation: bad values stop the run with the key, value and allowed values."""

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from blossom_app.benchmarks import get_task
from blossom_app.common.config import ExperimentConfig
from blossom_app.common.modality_mix import parse_mix
from blossom_app.common.node_config import NodeConfig
from blossom_app.errors import ConfigError

DEFAULTS = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())[
    "tool"
]["flwr"]["app"]["config"]
WATCH = get_task("watch")


def config(**overrides):
    return ExperimentConfig.from_run_config({**DEFAULTS, **overrides})


def test_pyproject_defaults_are_valid():
    cfg = config()
    assert cfg.task.name == "watch"
    assert cfg.mix.num_clients == 10
    # the default recipe (issue 26): every block shared, adaptive personalization
    assert cfg.policy.name == "full-model+adaptive" and cfg.adaptive
    assert cfg.data.validation_fraction == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("dataset", "mnist", "watch"),
        ("aggregation", "privat-head", "private-head-fusion"),
        ("partitioner", "label-skew", "dirichlet"),
        ("fusion", "gated", "attention"),
        ("modality-mix", "3-3", "a-b-c"),
        ("modality-mix", "acc=3,ecg=2", "acc, gyro"),
        ("num-server-rounds", 0, "positive"),
        ("num-server-rounds", "ten", "int"),
        ("test-fraction", 1.5, "(0, 1)"),
        ("private-blocks", "head", "custom"),
        ("transport", "int4", "fp32, fp16"),
        ("server-optimizer", "adam", "fedadam"),
        ("server-beta2", 1.0, "[0, 1)"),
        ("proximal-mu", -0.1, "non-negative"),
    ],
)
def test_bad_run_config_names_key_value_and_allowed(key, value, allowed):
    with pytest.raises(ConfigError) as error:
        config(**{key: value})
    message = str(error.value)
    assert f"'{key}'" in message
    assert repr(value) in message
    assert allowed in message


def test_mix_short_and_explicit_forms_agree():
    short = parse_mix("3-3-4", WATCH)
    explicit = parse_mix("acc=3,gyro=3,acc+gyro=4", WATCH)
    assert short.groups == explicit.groups
    assert short.label == "3-3-4"


def test_mix_deals_modality_sets_round_robin():
    mix = parse_mix("3-3-4", WATCH)
    assigned = [mix.modalities_for(i) for i in range(10)]
    assert assigned[:3] == [("acc",), ("gyro",), ("acc", "gyro")]
    assert assigned.count(("acc",)) == 3
    assert assigned.count(("gyro",)) == 3
    assert assigned.count(("acc", "gyro")) == 4


def test_exclusive_mix_has_no_multimodal_client():
    mix = parse_mix("5-5-0", WATCH)
    assert {mix.modalities_for(i) for i in range(10)} == {("acc",), ("gyro",)}


def test_node_config_modalities_override_the_mix():
    node = NodeConfig.from_node_config(
        {"partition-id": 0, "num-partitions": 2, "modalities": "gyro"}, WATCH
    )
    assert node.client_modalities(parse_mix("3-3-4", WATCH)) == ("gyro",)


def test_unknown_node_config_modality_is_refused():
    with pytest.raises(ConfigError) as error:
        NodeConfig.from_node_config(
            {"partition-id": 0, "num-partitions": 2, "modalities": "acc,ecg"}, WATCH
        )
    message = str(error.value)
    assert "'modalities'" in message and "acc,ecg" in message and "acc, gyro" in message


def test_mix_that_does_not_match_the_node_count_says_what_to_type():
    node = NodeConfig.from_node_config({"partition-id": 0, "num-partitions": 2}, WATCH)
    with pytest.raises(ConfigError) as error:
        node.client_modalities(parse_mix("3-3-4", WATCH))
    assert "num-supernodes=10" in str(error.value)


def test_unknown_node_config_key_is_refused():
    with pytest.raises(ConfigError, match="modality"):
        NodeConfig.from_node_config(
            {"partition-id": 0, "num-partitions": 2, "modality": "acc"}, WATCH
        )


def test_a_node_with_its_own_data_needs_no_partition():
    node = NodeConfig.from_node_config(
        {"data-path": "/data/mine.parquet", "modalities": "acc"}, WATCH
    )
    assert (node.partition_id, node.num_partitions) == (0, 1)
    # partition-id then only names the device; its data is never split
    named = {"data-path": "/data/mine.parquet", "modalities": "acc", "partition-id": 3}
    node = NodeConfig.from_node_config(named, WATCH)
    assert (node.partition_id, node.num_partitions) == (3, 1)
    with pytest.raises(ConfigError, match="'num-partitions'.*not split"):
        NodeConfig.from_node_config({**named, "num-partitions": 4}, WATCH)


NODE = {"partition-id": 0, "num-partitions": 2}


@pytest.mark.parametrize("bad", ["gpu", "cuda:99", "mps"])
def test_a_bad_device_names_the_key_and_choices(bad):
    with pytest.raises(ConfigError) as error:
        NodeConfig.from_node_config({**NODE, "device": bad}, WATCH)
    assert "'device'" in str(error.value) and bad in str(error.value)


def test_device_defaults_to_cuda_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert NodeConfig.from_node_config(NODE, WATCH).device.type == expected
    cpu = NodeConfig.from_node_config({**NODE, "device": "cpu"}, WATCH)
    assert cpu.device.type == "cpu"


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("num-threads", -1, "0 (torch's default) or more"),
        ("num-threads", "4", "int"),
        ("partition-id", 2, "0 to 1"),
        ("num-partitions", 0, "positive"),
        ("state-dir", 3, "str"),
    ],
)
def test_bad_node_config_names_key_value_and_allowed(key, value, allowed):
    with pytest.raises(ConfigError) as error:
        NodeConfig.from_node_config({**NODE, key: value}, WATCH)
    message = str(error.value)
    assert f"'{key}'" in message and repr(value) in message and allowed in message


UNGROUPED = replace(WATCH, name="ungrouped", group_column=None)


def test_natural_partitioner_needs_a_group_column():
    with pytest.raises(ConfigError, match="no group column"):
        config(dataset="test_config:UNGROUPED", partitioner="natural")
