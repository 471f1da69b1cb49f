"""Key -> block mapping, policies and the outgoing guard."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord

from blossom_app.common.blocks import (
    PrivateBlockLeak,
    block_of,
    guard_outgoing,
    held_blocks,
)
from blossom_app.common.policies import make_policy
from blossom_app.errors import ConfigError


@pytest.mark.parametrize(
    ("key", "block"),
    [
        ("encoders.acc.conv.0.weight", "encoder:acc"),
        ("encoders.acc_watch.gru.weight_ih_l0", "encoder:acc_watch"),
        ("fusion.projections.acc.weight", "fusion"),
        ("head.2.bias", "head"),
    ],
)
def test_block_of(key, block):
    assert block_of(key) == block


@pytest.mark.parametrize("key", ["encoder.acc.w", "heads.0.w", "encoders.acc", "x"])
def test_block_of_rejects_foreign_keys(key):
    with pytest.raises(ValueError, match="no block"):
        block_of(key)


def test_held_blocks():
    assert held_blocks(["gyro"]) == {"encoder:gyro", "fusion", "head", "normalization"}


KEYS = ["encoders.acc.w", "encoders.gyro.w", "fusion.w", "head.w"]


@pytest.mark.parametrize(
    ("name", "private", "shared"),
    [
        ("full-model", [], KEYS),
        ("private-head", ["head.w"], KEYS[:3]),
        ("private-head-fusion", ["fusion.w", "head.w"], KEYS[:2]),
    ],
)
def test_policies(name, private, shared):
    policy = make_policy(name, "", ["acc", "gyro"])
    assert policy.private_keys(KEYS) == private
    assert policy.shared_keys(KEYS) == shared


def test_custom_policy_names_private_blocks():
    policy = make_policy("custom", "head, encoder:gyro", ["acc", "gyro"])
    assert policy.private_keys(KEYS) == ["encoders.gyro.w", "head.w"]


def test_policy_typo_names_the_key_and_allowed_values():
    with pytest.raises(ConfigError) as error:
        make_policy("private-heads", "", ["acc"])
    message = str(error.value)
    assert "'aggregation'" in message and "private-heads" in message
    assert "private-head-fusion" in message


def test_custom_policy_with_unknown_block_is_refused():
    with pytest.raises(ConfigError, match="encoder:audio"):
        make_policy("custom", "encoder:audio", ["acc", "gyro"])


def test_guard_refuses_private_keys():
    policy = make_policy("private-head", "", ["acc"])
    leaking = ArrayRecord(
        {"head.w": Array(np.zeros(2)), "fusion.w": Array(np.zeros(2))}
    )
    with pytest.raises(PrivateBlockLeak, match="head.w"):
        guard_outgoing(leaking, policy)
    clean = ArrayRecord({"fusion.w": Array(np.zeros(2))})
    assert guard_outgoing(clean, policy) is clean
