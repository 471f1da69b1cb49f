"""BlockwiseStrategy with real Flower messages: what each node is sent, how
replies are aggregated, and every way a reply gets rejected."""

from dataclasses import replace
from functools import cache, partial

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    Context,
    Error,
    MetricRecord,
    RecordDict,
)
from rounds import (
    NODES,
    RUN_CONFIG,
    WATCH,
    LocalGrid,
    contexts,
    global_arrays,
    profiles,
    reply,
    round_config,
    strategy,
)

from blossom_app.common.modality_mix import parse_mix
from blossom_app.common.model import parameter_keys
from blossom_app.common.policies import make_policy
from blossom_app.server.fleet import Fleet
from blossom_app.server.server_state import ServerState
from blossom_app.server.strategy import BlockwiseStrategy

ACC, GYRO, BOTH = NODES


def configure(server, arrays):
    messages = server.configure_train(1, arrays, round_config(), LocalGrid())
    return {msg.metadata.dst_node_id: msg for msg in messages}


def shifted(
    msg, delta: float, weight: int = 10, extra: dict | None = None
) -> RecordDict:
    """A well-formed train reply: every array sent, plus ``delta``."""
    arrays = {k: Array(v.numpy() + delta) for k, v in msg.content["arrays"].items()}
    arrays.update({k: Array(v) for k, v in (extra or {}).items()})
    metrics = MetricRecord({"train-examples": weight, "train-loss": 1.0})
    return RecordDict({"arrays": ArrayRecord(arrays), "metrics": metrics})


def test_each_node_is_sent_only_the_shared_blocks_it_holds():
    messages = configure(strategy("private-head"), global_arrays())
    acc_keys = set(messages[ACC].content["arrays"])
    assert any(k.startswith("encoders.acc.") for k in acc_keys)
    assert not any(k.startswith(("encoders.gyro.", "head.")) for k in acc_keys)
    assert any(k.startswith("fusion.") for k in acc_keys)
    assert not any(k.startswith("fusion.projections.gyro.") for k in acc_keys)
    both_keys = set(messages[BOTH].content["arrays"])
    assert acc_keys < both_keys
    assert not any(k.startswith("head.") for k in both_keys)


def test_private_head_fusion_sends_encoders_only():
    messages = configure(strategy("private-head-fusion"), global_arrays())
    for msg in messages.values():
        assert all(k.startswith("encoders.") for k in msg.content["arrays"])


def test_every_parameter_is_averaged_over_exactly_the_nodes_that_returned_it():
    server = strategy("full-model", transport="fp32")  # exact sums to compare
    arrays = global_arrays()
    messages = configure(server, arrays)
    replies = [
        reply(messages[ACC], shifted(messages[ACC], 1.0, weight=10)),
        reply(messages[GYRO], shifted(messages[GYRO], 2.0, weight=20)),
        reply(messages[BOTH], shifted(messages[BOTH], 4.0, weight=30)),
    ]
    merged, metrics = server.aggregate_train(1, replies)
    before = {k: v.numpy() for k, v in arrays.items()}
    after = {k: v.numpy() for k, v in merged.items()}
    acc_key = next(k for k in before if k.startswith("encoders.acc."))
    gyro_key = next(k for k in before if k.startswith("encoders.gyro."))
    np.testing.assert_allclose(
        after[acc_key], before[acc_key] + (10 + 120) / 40, rtol=1e-5
    )
    np.testing.assert_allclose(
        after[gyro_key], before[gyro_key] + (40 + 120) / 50, rtol=1e-5
    )
    np.testing.assert_allclose(
        after["head.0.bias"], before["head.0.bias"] + 170 / 60, rtol=1e-5
    )
    assert metrics["train-examples"] == 60
    assert metrics["train-clients"] == 3
    assert list(after) == list(before)


def test_a_key_nobody_returned_keeps_its_value():
    server = strategy("full-model")
    arrays = global_arrays()
    messages = configure(server, arrays)
    merged, _ = server.aggregate_train(
        1, [reply(messages[ACC], shifted(messages[ACC], 1.0))]
    )
    gyro_key = next(k for k in arrays if k.startswith("encoders.gyro."))
    np.testing.assert_array_equal(merged[gyro_key].numpy(), arrays[gyro_key].numpy())


def _bad_private(msg):
    return shifted(msg, 1.0, extra={"head.0.bias": np.zeros(64, np.float32)})


def _bad_unknown(msg):
    return shifted(msg, 1.0, extra={"encoders.ecg.w": np.zeros(3, np.float32)})


def _bad_foreign_encoder(msg):
    return shifted(
        msg, 1.0, extra={"encoders.gyro.gru.bias_hh_l0": np.zeros(384, np.float32)}
    )


def _bad_shape(msg):
    key = next(iter(msg.content["arrays"]))
    return shifted(msg, 1.0, extra={key: np.zeros((2, 2), np.float32)})


def _bad_value(msg):
    key = next(iter(msg.content["arrays"]))
    value = msg.content["arrays"][key].numpy().copy()
    value.flat[0] = np.nan
    return shifted(msg, 1.0, extra={key: value})


def _bad_weight(msg):
    content = shifted(msg, 1.0)
    content["metrics"] = MetricRecord({"train-examples": 0, "train-loss": 1.0})
    return content


@pytest.mark.parametrize(
    ("make_reply", "reason"),
    [
        (_bad_private, "private keys"),
        (_bad_unknown, "not sent"),
        (_bad_foreign_encoder, "not sent"),
        (_bad_shape, "shape"),
        (_bad_value, "non-finite"),
        (_bad_weight, "train-examples"),
    ],
)
def test_bad_reply_is_rejected_logged_and_changes_nothing(make_reply, reason):
    server = strategy("private-head")
    arrays = global_arrays()
    messages = configure(server, arrays)
    good = reply(messages[BOTH], shifted(messages[BOTH], 1.0))
    bad = reply(messages[ACC], make_reply(messages[ACC]))

    merged, _ = server.aggregate_train(1, [good, bad])

    reference = strategy("private-head")
    configure(reference, arrays)
    expected, _ = reference.aggregate_train(1, [good])
    for key in arrays:
        np.testing.assert_array_equal(merged[key].numpy(), expected[key].numpy())
    reasons = {row["node_id"]: row["reason"] for row in server.record.rejections}
    assert reason in reasons[ACC]
    assert reasons[GYRO] == "no reply in time"
    assert set(reasons) == {ACC, GYRO}


def test_only_bad_replies_leave_the_global_model_unchanged():
    server = strategy("private-head")
    messages = configure(server, global_arrays())
    assert server.aggregate_train(
        1, [reply(messages[ACC], _bad_private(messages[ACC]))]
    ) == (
        None,
        None,
    )


def test_error_reply_is_logged_as_rejection():
    server = strategy("full-model")
    messages = configure(server, global_arrays())
    failed = reply(messages[GYRO], Error(code=0, reason="out of memory"))
    merged, _ = server.aggregate_train(1, [failed])
    assert merged is None
    assert "out of memory" in server.record.rejections[0]["reason"]


def test_bytes_sent_are_recorded_per_node_and_block():
    server = strategy("private-head")
    messages = configure(server, global_arrays())
    down = [row for row in server.record.communication if row["direction"] == "down"]
    for node_id, msg in messages.items():
        sent = sum(len(a.data) for a in msg.content["arrays"].values())
        assert sum(r["bytes"] for r in down if r["node_id"] == node_id) == sent
    blocks_to_acc = {r["block"] for r in down if r["node_id"] == ACC}
    assert blocks_to_acc == {"encoder:acc", "fusion"}


def test_evaluate_every_skips_rounds_but_always_evaluates_the_last():
    server = strategy("full-model", evaluate_every=3)
    server.num_rounds = 7
    config = round_config()
    evaluated = []
    for rnd in range(1, 8):
        [first, *_] = server.configure_train(rnd, global_arrays(), config, LocalGrid())
        if first.content["config"]["evaluate-first"]:  # the previous round's model
            evaluated.append(rnd - 1)
        if list(server.configure_evaluate(rnd, global_arrays(), config, LocalGrid())):
            evaluated.append(rnd)
    assert evaluated == [3, 6, 7]
    assert server.aggregate_evaluate(1, []) is None
    assert "evaluate" not in server.record.timing[1]
    assert not server.record.rejections


def test_an_evaluated_round_nobody_answered_is_recorded_not_silent():
    server = strategy("full-model")
    config = round_config()
    sent = list(server.configure_evaluate(2, global_arrays(), config, LocalGrid()))
    assert server.aggregate_evaluate(2, []) is None
    rejected = {row["node_id"]: row for row in server.record.rejections}
    assert set(rejected) == {msg.metadata.dst_node_id for msg in sent} == set(NODES)
    assert {row["phase"] for row in rejected.values()} == {"evaluate"}
    assert {row["reason"] for row in rejected.values()} == {"no reply in time"}
    assert server.record.timing[2]["evaluate"] >= 0
    assert not server.record.evaluate


@pytest.mark.parametrize("drop", ["test-loss", "confusion"])
def test_evaluate_reply_missing_a_metric_is_rejected_not_fatal(drop):
    server = strategy("full-model")
    config = round_config()
    messages = list(server.configure_evaluate(2, global_arrays(), config, LocalGrid()))
    good = {
        "test-examples": 4,
        "test-loss": 1.0,
        "accuracy": 0.5,
        "macro-f1": 0.5,
        "confusion": [1] * 49,
    }
    bad = {k: v for k, v in good.items() if k != drop}
    replies = [
        reply(msg, RecordDict({"metrics": MetricRecord(m)}))
        for msg, m in zip(messages, (good, good, bad), strict=True)
    ]
    metrics = server.aggregate_evaluate(2, replies)
    assert metrics["test-clients"] == 2
    assert drop in server.record.rejections[0]["reason"]


def test_a_fleet_that_does_not_match_the_mix_is_refused_with_the_fix():
    from rounds import WATCH, profiles

    from blossom_app.common.modality_mix import parse_mix
    from blossom_app.errors import ConfigError
    from blossom_app.server.fleet import check_fleet

    check_fleet(profiles(), parse_mix("1-1-1", WATCH))
    with pytest.raises(ConfigError) as error:
        check_fleet(profiles(), parse_mix("acc=2,gyro=1", WATCH))
    assert "modality-mix='acc=1,acc+gyro=1,gyro=1'" in str(error.value)


def test_nodes_that_come_and_go_are_followed_each_round():
    server = strategy("full-model")
    grid = LocalGrid()
    # the gyro node is gone; a restarted acc node connects with a new id (an
    # insecure SuperNode gets one at every start): it is profiled and joins
    del grid.nodes[GYRO]
    restarted = Context(
        run_id=1,
        node_id=201,
        node_config={"partition-id": 0, "num-partitions": 3, "modalities": "acc"},
        state=RecordDict(),
        run_config=RUN_CONFIG,
    )
    grid.nodes[201] = restarted
    messages = server.configure_train(1, global_arrays(), round_config(), grid)
    assert sorted(m.metadata.dst_node_id for m in messages) == [ACC, BOTH, 201]
    assert server.profiles[201].modalities == ("acc",)
    [missing] = server.record.rejections
    assert (missing["node_id"], missing["phase"], missing["reason"]) == (
        GYRO,
        "train",
        "not connected",
    )


def test_a_joining_node_with_a_set_the_mix_lacks_is_left_out():
    known = {n: p for n, p in profiles().items() if n != GYRO}
    server = BlockwiseStrategy(
        make_policy("full-model", "", WATCH.modality_names),
        Fleet(known, parse_mix("acc=1,acc+gyro=1", WATCH), timeout=60),
        cache(partial(parameter_keys, WATCH, fusion="attention")),
        num_rounds=2,
    )
    grid = LocalGrid()  # the gyro-only node connects: the mix has no such client
    config = round_config()
    for _ in range(2):  # profiled once, then left out without asking again
        messages = server.configure_evaluate(2, global_arrays(), config, grid)
        assert sorted(m.metadata.dst_node_id for m in messages) == [ACC, BOTH]
    assert GYRO not in server.profiles
    assert server.fleet._refused == {GYRO}


def test_the_superlinks_error_for_an_unavailable_node_names_that_node():
    from flwr.server.superlink.linkstate.utils import (
        create_message_error_unavailable_res_message,
    )

    server = strategy("full-model")
    messages = configure(server, global_arrays())
    for msg in messages.values():  # as the Grid does when it pushes them
        msg.metadata.__dict__["_message_id"] = msg.object_id
    error = create_message_error_unavailable_res_message(
        messages[GYRO].metadata, "node_unavail"
    )
    assert error.metadata.src_node_id != GYRO  # it comes from the SuperLink
    good = [reply(messages[n], shifted(messages[n], 1.0)) for n in (ACC, BOTH)]
    server.aggregate_train(1, [*good, error])
    [rejection] = server.record.rejections
    assert rejection["node_id"] == GYRO and rejection["partition_id"] == 1
    assert "heartbeat" in rejection["reason"]


def test_sampling_draws_the_same_partitions_for_the_same_seed_whatever_the_ids():
    def sampled(node_ids: list[int]) -> list[int]:
        renamed = {new: old for new, old in zip(node_ids, NODES, strict=True)}
        known = {
            new: replace(profiles()[old], node_id=new) for new, old in renamed.items()
        }
        fleet = Fleet(known, parse_mix("1-1-1", WATCH), timeout=60)
        server = BlockwiseStrategy(
            make_policy("full-model", "", WATCH.modality_names),
            fleet,
            cache(partial(parameter_keys, WATCH, fusion="attention")),
            num_rounds=2,
            fraction_train=0.67,
            state=ServerState.fresh(fleet.profiles, seed=7),
        )
        grid = LocalGrid({new: contexts()[old] for new, old in renamed.items()})
        config = round_config()
        messages = server.configure_train(1, global_arrays(), config, grid)
        return sorted(known[m.metadata.dst_node_id].partition_id for m in messages)

    first = sampled([11, 12, 13])
    assert len(first) == 2
    assert sampled([93, 2, 57]) == first  # other node ids, same partitions
