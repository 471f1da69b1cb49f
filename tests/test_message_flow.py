"""Messages out and replies back one at a time: the window of messages in
flight, the timeout, and replies handed on in partition order whatever order
they arrive in."""

import itertools
from uuid import uuid4

import pytest
from flwr.app import Message, RecordDict
from rounds import NODES, LocalGrid, global_arrays, round_config, strategy
from test_strategy import shifted

from blossom_app.server.message_flow import stream, window_for

ACC, GYRO, BOTH = NODES  # partitions 0, 1, 2


class SlowGrid:
    """A Grid whose nodes answer ``delay`` pulls after a message is pushed
    (never, if None); it records the most messages it ever held at once."""

    def __init__(self, delay: int | None = 1) -> None:
        self.delay = delay
        self.held: dict[str, tuple[Message, int]] = {}  # id -> message, pulls
        self.pushed: list[int] = []
        self.most_held = 0

    def push_messages(self, messages):
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = uuid4().hex
            self.held[message.metadata.message_id] = (message, 0)
            self.pushed.append(message.metadata.dst_node_id)
            ids.append(message.metadata.message_id)
        self.most_held = max(self.most_held, len(self.held))
        return ids

    def pull_messages(self, message_ids):
        replies = []
        for message_id in list(message_ids):
            message, pulls = self.held[message_id]
            if self.delay is not None and pulls >= self.delay:
                del self.held[message_id]
                replies.append(Message(RecordDict(), reply_to=message))
            else:
                self.held[message_id] = (message, pulls + 1)
        return replies


def queries(count: int) -> list[Message]:
    return [
        Message(RecordDict(), dst_node_id=node_id, message_type="query.test")
        for node_id in range(1, count + 1)
    ]


def test_a_window_bounds_the_messages_in_flight_and_keeps_their_order():
    grid = SlowGrid(delay=2)
    replies = list(stream(grid, queries(7), timeout=60, window=3))

    assert grid.most_held == 3
    assert grid.pushed == list(range(1, 8))
    assert sorted(reply.metadata.src_node_id for reply in replies) == grid.pushed


def test_without_a_window_a_deployed_superlink_gets_every_message_at_once():
    grid = SlowGrid(delay=1)
    assert window_for(grid) is None  # not a simulation's in-memory SuperLink

    assert len(list(stream(grid, queries(7), timeout=60))) == 7
    assert grid.most_held == 7


def test_replies_that_never_come_end_the_stream_at_the_timeout():
    grid = SlowGrid(delay=None)

    assert list(stream(grid, queries(5), timeout=0.3, window=2)) == []
    assert grid.pushed == [1, 2]  # the rest were never sent


@pytest.mark.parametrize("arrival", list(itertools.permutations([ACC, GYRO, BOTH])))
def test_replies_are_handed_on_in_partition_order_as_soon_as_their_turn_comes(
    arrival,
):
    server = strategy("full-model")
    messages = list(
        server.configure_train(1, global_arrays(), round_config(), LocalGrid())
    )
    assert [m.metadata.dst_node_id for m in messages] == [ACC, GYRO, BOTH]
    by_node = {m.metadata.dst_node_id: m for m in messages}
    arrived = []

    def replies():
        for node_id in arrival:
            arrived.append(node_id)
            message = by_node[node_id]
            yield Message(shifted(message, 1.0), reply_to=message)

    order, handed = [ACC, GYRO, BOTH], []
    answers = server.exchange.receive("train", 1, replies(), "train-examples", ())
    for answer in answers:
        before = order[: order.index(answer.node_id) + 1]
        assert set(before) <= set(arrived)  # not before its turn
        assert arrived[-1] in before  # and as soon as it came
        handed.append(answer.node_id)
    assert handed == [ACC, GYRO, BOTH]


def test_the_mean_is_the_same_bits_whatever_order_the_replies_arrive_in():
    results = []
    for arrival in itertools.permutations([ACC, GYRO, BOTH]):
        server = strategy("full-model", transport="fp32")
        arrays = global_arrays()
        sent = server.configure_train(1, arrays, round_config(), LocalGrid())
        by_node = {m.metadata.dst_node_id: m for m in sent}
        # 1e20 + x - 1e20 is 0 or x, by the order of the sums
        deltas = {ACC: 1e20, GYRO: 1e-3, BOTH: -1e20}
        replies = [
            Message(shifted(by_node[n], deltas[n]), reply_to=by_node[n])
            for n in arrival
        ]
        merged, _ = server.aggregate_train(1, replies)
        results.append({k: v.numpy().tobytes() for k, v in merged.items()})
        rows = [row["partition_id"] for row in server.record.train]
        assert rows == [0, 1, 2]
    assert all(result == results[0] for result in results)


def test_the_superlinks_error_for_a_node_names_that_node_when_streamed():
    from flwr.server.superlink.linkstate.utils import (
        create_message_error_unavailable_res_message,
    )

    class GyroGone(LocalGrid):
        def answer(self, message):
            if message.metadata.dst_node_id != GYRO:
                return super().answer(message)
            return create_message_error_unavailable_res_message(
                message.metadata, "node_unavail"
            )

    server = strategy("full-model")
    grid = GyroGone()
    messages = server.configure_train(1, global_arrays(), round_config(), grid)
    # ids are given as the messages are pushed, after the replies began to stream
    _, metrics = server.aggregate_train(1, stream(grid, messages, 60, window=1))

    [rejection] = server.record.rejections
    assert rejection["node_id"] == GYRO and rejection["partition_id"] == 1
    assert "heartbeat" in rejection["reason"]
    assert metrics["train-clients"] == 2
