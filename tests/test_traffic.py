"""What travels each round, in-process (the real strategy and ClientApp): the
evaluation rides on the next round's training instead of a second download,
and shared blocks may travel as fp16."""

import copy

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from rounds import (
    NODES,
    RUN_CONFIG,
    LocalGrid,
    client_app,
    contexts,
    global_arrays,
    reply,
    round_config,
    strategy,
    train_round,
)

from blossom_app.common.protocol import EVALUATION
from blossom_app.common.transport import encode
from blossom_app.server.export_round import export_models

CONFIG = round_config()


def evaluate_directly(server, arrays, nodes, server_round):
    """What an ``evaluate`` message of ``server_round`` would have returned,
    asked of a copy of each node (its private blocks as they are now), with
    the blocks as they travel."""
    results = {}
    for node_id, context in nodes.items():
        content = RecordDict(
            {
                "arrays": server.exchange.shared_for(
                    node_id, encode(arrays, server.transport)
                ),
                "config": round_config(**{"server-round": server_round}),
            }
        )
        message = Message(
            content, dst_node_id=node_id, message_type=MessageType.EVALUATE
        )
        answer = client_app(message, copy.deepcopy(context))
        results[node_id] = answer.content["metrics"]
    return results


def test_a_round_is_evaluated_by_the_next_rounds_training_on_the_same_blocks():
    server, nodes = strategy("private-head-fusion"), contexts()
    replies, arrays = train_round(server, global_arrays(), nodes, server_round=1)
    assert not any(EVALUATION in r.content.metric_records for r in replies)
    # everyone trains next round, so nobody is sent the blocks twice
    assert list(server.configure_evaluate(1, arrays, CONFIG, LocalGrid(nodes))) == []
    expected = evaluate_directly(server, arrays, nodes, server_round=1)

    replies, arrays = train_round(server, arrays, nodes, server_round=2)
    assert all(EVALUATION in r.content.metric_records for r in replies)
    rows = {r["node_id"]: r for r in server.record.evaluate if r["round"] == 1}
    assert set(rows) == set(NODES)
    for node_id, metrics in expected.items():
        # exactly what a separate evaluate message would have measured
        assert rows[node_id]["accuracy"] == metrics["accuracy"]
        assert rows[node_id]["test_loss"] == metrics["test-loss"]
    summary = server.record.aggregated[1]
    assert summary["test-clients"] == len(NODES)
    assert summary["test-examples"] == sum(
        m["test-examples"] for m in expected.values()
    )

    # after the last round, every node is sent the final blocks to evaluate
    messages = list(server.configure_evaluate(2, arrays, CONFIG, LocalGrid(nodes)))
    assert sorted(m.metadata.dst_node_id for m in messages) == sorted(NODES)
    answers = [client_app(m, nodes[m.metadata.dst_node_id]) for m in messages]
    assert server.aggregate_evaluate(2, answers)["test-clients"] == len(NODES)
    evaluate_phases = {
        (r["round"], r["direction"])
        for r in server.record.communication
        if r["phase"] == "evaluate"
    }
    assert evaluate_phases == {(2, "down")}


def test_nodes_not_drawn_for_the_next_round_get_an_evaluate_message():
    server, nodes = strategy("full-model", fraction_train=0.67, seed=3), contexts()
    grid = LocalGrid(nodes)
    _, arrays = train_round(server, global_arrays(), nodes, server_round=1)
    by_message = list(server.configure_evaluate(1, arrays, CONFIG, grid))
    trainees = list(server.configure_train(2, arrays, CONFIG, grid))
    asked = [m.metadata.dst_node_id for m in (*by_message, *trainees)]
    assert len(by_message) == 1 and len(trainees) == 2
    assert sorted(asked) == sorted(NODES)  # each node evaluated once
    assert all(m.content["config"]["evaluate-first"] for m in trainees)

    answers = [client_app(m, nodes[m.metadata.dst_node_id]) for m in by_message]
    assert server.aggregate_evaluate(1, answers) is None  # not complete yet
    replies = [client_app(m, nodes[m.metadata.dst_node_id]) for m in trainees]
    server.aggregate_train(2, replies)
    assert server.record.aggregated[1]["test-clients"] == len(NODES)
    assert {r["node_id"] for r in server.record.evaluate} == set(NODES)


def test_an_unusable_evaluation_in_a_train_reply_is_rejected_and_training_kept():
    server, nodes = strategy("full-model"), contexts()
    _, arrays = train_round(server, global_arrays(), nodes, server_round=1)
    messages = list(server.configure_train(2, arrays, CONFIG, LocalGrid(nodes)))
    replies = [client_app(m, nodes[m.metadata.dst_node_id]) for m in messages]
    broken = replies[0].content
    del broken.metric_records[EVALUATION]["confusion"]
    _, metrics = server.aggregate_train(2, replies)
    assert metrics["train-clients"] == len(NODES)
    [rejection] = server.record.rejections
    assert (rejection["round"], rejection["phase"]) == (1, "evaluate")
    assert "confusion" in rejection["reason"]
    assert server.record.aggregated[1]["test-clients"] == len(NODES) - 1


def test_fp16_transport_halves_the_bytes_both_ways_and_exports_losslessly(tmp_path):
    sizes = {}
    for transport in ("fp32", "fp16"):
        server = strategy("private-head-fusion", transport=transport)
        nodes = contexts({**RUN_CONFIG, "transport": transport})
        replies, arrays = train_round(server, global_arrays(), nodes, server_round=1)
        assert not server.record.rejections
        dtypes = {a.dtype for r in replies for a in r.content["arrays"].values()}
        assert dtypes == {"float16" if transport == "fp16" else "float32"}
        assert {a.dtype for a in arrays.values()} == {"float32"}  # global: full
        sizes[transport] = {
            direction: sum(
                r["bytes"] for r in server.record.communication
                if r["direction"] == direction
            )
            for direction in ("down", "up")
        }  # fmt: skip
        if transport == "fp16":
            export_models(
                LocalGrid(nodes), server, arrays, round_config(), tmp_path / "models",
                server_round=1, int8=False, timeout=60,
            )  # fmt: skip
            exported = [
                r for r in server.record.communication if r["phase"] == "export"
            ]
            assert sum(r["bytes"] for r in exported) > 0.99 * sizes["fp32"]["down"]
    for direction in ("down", "up"):
        ratio = sizes["fp16"][direction] / sizes["fp32"][direction]
        assert 0.5 <= ratio < 0.51  # half, plus each array's header


def test_under_fp16_an_fp32_update_is_rejected_naming_the_dtype():
    server = strategy("full-model", transport="fp16")
    messages = server.configure_train(1, global_arrays(), CONFIG, LocalGrid())
    msg = next(iter(messages))
    wide = {
        key: Array(array.numpy().astype(np.float32))
        for key, array in msg.content["arrays"].items()
    }
    metrics = MetricRecord({"train-examples": 10, "train-loss": 1.0})
    content = RecordDict({"arrays": ArrayRecord(wide), "metrics": metrics})
    assert server.aggregate_train(1, [reply(msg, content)]) == (None, None)
    [rejection] = [
        row
        for row in server.record.rejections
        if row["node_id"] == msg.metadata.dst_node_id
    ]
    assert "dtype float32, expected float16" in rejection["reason"]


def test_the_local_policy_sends_no_arrays_in_any_message(tmp_path):
    server = strategy("local")
    nodes = contexts({**RUN_CONFIG, "aggregation": "local"})
    start = global_arrays()
    replies, arrays = train_round(server, start, nodes, server_round=1)
    replies2, arrays = train_round(server, arrays, nodes, server_round=2)
    messages = list(server.configure_evaluate(2, arrays, CONFIG, LocalGrid(nodes)))
    export_models(
        LocalGrid(nodes), server, arrays, round_config(), tmp_path / "models",
        server_round=2, int8=False, timeout=60,
    )  # fmt: skip
    for message in (*replies, *replies2, *messages):
        assert not message.content.array_records.get("arrays", ArrayRecord())
    assert not server.record.communication  # not a byte of parameters
    assert not server.record.rejections
    for key, array in start.items():  # nothing was averaged
        np.testing.assert_array_equal(arrays[key].numpy(), array.numpy())
    assert server.record.aggregated[1]["test-clients"] == len(NODES)  # yet evaluated
    assert {row["status"] for row in server.record.models} == {"written"}
