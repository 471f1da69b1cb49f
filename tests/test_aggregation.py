"""Aggregation math against hand-computed weighted means, and update checks."""

import numpy as np
import pytest

from blossom_app.server.aggregation import BlockwiseMean, InvalidUpdate, check_update


def mean_of(current, updates):
    """``BlockwiseMean`` of ``(arrays, weight)`` pairs added in their order."""
    mean = BlockwiseMean(current)
    for arrays, weight in updates:
        mean.add(arrays, weight)
    return mean.result()


def test_each_key_is_averaged_over_exactly_its_holders():
    current = {
        "encoders.acc.w": np.zeros(2, np.float32),
        "encoders.gyro.w": np.zeros(2, np.float32),
        "head.w": np.zeros(2, np.float32),
    }
    a = {
        "encoders.acc.w": np.array([1.0, 2.0], np.float32),
        "head.w": np.ones(2, np.float32),
    }
    b = {
        "encoders.gyro.w": np.array([4.0, 8.0], np.float32),
        "head.w": np.full(2, 3.0, np.float32),
    }
    c = {
        "encoders.acc.w": np.array([3.0, 6.0], np.float32),
        "head.w": np.full(2, 5.0, np.float32),
    }

    merged = mean_of(current, [(a, 1.0), (b, 2.0), (c, 3.0)])

    # acc: holders a (w=1) and c (w=3) -> (1*1 + 3*3)/4 = 2.5, (2 + 18)/4 = 5
    np.testing.assert_allclose(merged["encoders.acc.w"], [2.5, 5.0])
    # gyro: only b -> its own values, whatever its weight
    np.testing.assert_allclose(merged["encoders.gyro.w"], [4.0, 8.0])
    # head: all three -> (1*1 + 2*3 + 3*5)/6
    np.testing.assert_allclose(merged["head.w"], [22 / 6, 22 / 6], rtol=1e-6)
    assert merged["head.w"].dtype == np.float32


def test_key_held_by_nobody_keeps_its_value():
    current = {"encoders.ecg.w": np.array([7.0, -1.0]), "head.w": np.zeros(1)}
    merged = mean_of(current, [({"head.w": np.ones(1)}, 5.0)])
    np.testing.assert_array_equal(merged["encoders.ecg.w"], [7.0, -1.0])
    np.testing.assert_array_equal(merged["head.w"], [1.0])


def test_integer_buffers_are_not_averaged():
    current = {"fusion.bn.num_batches_tracked": np.array(10, np.int64)}
    updates = [
        ({"fusion.bn.num_batches_tracked": np.array(3, np.int64)}, 1.0),
        ({"fusion.bn.num_batches_tracked": np.array(4, np.int64)}, 1.0),
    ]
    merged = mean_of(current, updates)
    assert merged["fusion.bn.num_batches_tracked"] == 10


REFERENCE = {
    "encoders.acc.w": np.zeros((2, 3), np.float32),
    "fusion.w": np.zeros(4, np.float32),
    "head.w": np.zeros(2, np.float32),
}
SENT = {"encoders.acc.w", "fusion.w"}
PRIVATE = {"head.w"}


def test_valid_update_passes():
    check_update(
        {"encoders.acc.w": np.ones((2, 3), np.float32)}, REFERENCE, SENT, PRIVATE
    )


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        ({"head.w": np.zeros(2, np.float32)}, "private"),
        ({"encoders.gyro.w": np.zeros(2, np.float32)}, "not sent"),
        ({"encoders.acc.w": np.zeros((3, 2), np.float32)}, "shape"),
        ({"encoders.acc.w": np.zeros((2, 3), np.float64)}, "dtype"),
        ({"fusion.w": np.array([0, np.nan, 0, 0], np.float32)}, "non-finite"),
        ({"fusion.w": np.array([0, np.inf, 0, 0], np.float32)}, "non-finite"),
    ],
)
def test_bad_updates_are_rejected_with_the_reason(update, reason):
    with pytest.raises(InvalidUpdate, match=reason):
        check_update(update, REFERENCE, SENT, PRIVATE)
