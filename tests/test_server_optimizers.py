"""Server optimizers per parameter: equal to Flower's own strategies where
every node trains every parameter, and blind to rounds a parameter sat out."""

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp.strategy import FedAdagrad, FedAdam, FedAvgM, FedYogi
from rounds import (
    RUN_CONFIG,
    LocalGrid,
    contexts,
    global_arrays,
    reply,
    round_config,
    strategy,
    train_round,
)
from test_aggregation import mean_of

from blossom_app.common.config import SERVER_OPTIMIZERS
from blossom_app.common.config import ServerOptimizerSettings as Settings
from blossom_app.server.server_optimizers import DEFAULT_LEARNING_RATES, ServerOptimizer

SHAPES = {"encoders.acc.w": (4, 3), "fusion.b": (5,), "head.w": (2, 2)}
WEIGHTS = (10, 20, 30)


def client_updates(current, server_round):
    """Three clients' arrays: the current ones moved by seeded noise."""
    rng = np.random.default_rng(server_round)
    return [
        {k: (v + rng.normal(scale=0.1, size=v.shape)).astype(np.float32)
         for k, v in current.items()}
        for _ in WEIGHTS
    ]  # fmt: skip


def flower_replies(updates):
    replies = []
    for node_id, (arrays, weight) in enumerate(zip(updates, WEIGHTS, strict=True)):
        sent = Message(
            RecordDict(), dst_node_id=node_id + 1, message_type=MessageType.TRAIN
        )
        content = RecordDict(
            {
                "arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                "metrics": MetricRecord({"num-examples": weight}),
            }
        )
        replies.append(reply(sent, content))
    return replies


FLOWER = {
    "fedavgm": lambda: FedAvgM(server_learning_rate=0.7, server_momentum=0.9),
    "fedadam": lambda: FedAdam(eta=0.1, beta_1=0.9, beta_2=0.99, tau=1e-3),
    "fedyogi": lambda: FedYogi(eta=0.01, beta_1=0.9, beta_2=0.99, tau=1e-3),
    "fedadagrad": lambda: FedAdagrad(eta=0.1, tau=1e-3),
}
OURS = {
    "fedavgm": lambda: ServerOptimizer(
        Settings("fedavgm", learning_rate=0.7, momentum=0.9)
    ),
    "fedadam": lambda: ServerOptimizer(Settings("fedadam")),
    "fedyogi": lambda: ServerOptimizer(Settings("fedyogi")),
    # Flower fixes FedAdagrad's beta_1 at 0 (no first-moment momentum)
    "fedadagrad": lambda: ServerOptimizer(Settings("fedadagrad", beta_1=0.0)),
}


@pytest.mark.parametrize("name", sorted(FLOWER))
def test_every_block_shared_matches_flowers_strategy(name):
    rng = np.random.default_rng(0)
    start = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    flower, ours = FLOWER[name](), OURS[name]()
    theirs_now, ours_now = dict(start), dict(start)
    if name == "fedavgm":
        flower.current_arrays = ArrayRecord({k: Array(v) for k, v in start.items()})
    for server_round in (1, 2, 3, 4):
        updates = client_updates(ours_now, server_round)
        if name != "fedavgm":  # FedOpt keeps what configure_train sent
            flower.current_arrays = dict(theirs_now)
        merged, _ = flower.aggregate_train(server_round, flower_replies(updates))
        theirs_now = {k: a.numpy() for k, a in merged.items()}
        averaged = mean_of(
            ours_now, list(zip(updates, map(float, WEIGHTS), strict=True))
        )
        ours_now = ours.step(ours_now, averaged, trained=set(SHAPES))
        for key in SHAPES:
            np.testing.assert_allclose(
                ours_now[key], theirs_now[key], rtol=1e-4, atol=1e-5
            )
        assert ours_now["head.w"].dtype == np.float32


@pytest.mark.parametrize("name", sorted(OURS))
def test_a_parameter_nobody_trained_keeps_its_value_and_its_state(name):
    rng = np.random.default_rng(1)
    current = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    optimizer, alone = OURS[name](), OURS[name]()
    key = "fusion.b"
    moves = [
        {k: v + rng.normal(scale=0.1, size=v.shape).astype(np.float32)
         for k, v in current.items()}
        for _ in range(3)
    ]  # fmt: skip
    # round 1: everything trained; round 2: not `key`; round 3: everything
    after = optimizer.step(current, moves[0], set(SHAPES))
    state = (optimizer.first.get(key), optimizer.second.get(key), optimizer.steps[key])
    skipped = optimizer.step(after, moves[1], set(SHAPES) - {key})
    np.testing.assert_array_equal(skipped[key], after[key])
    assert optimizer.steps[key] == state[2]
    for saved, now in zip(
        state[:2], (optimizer.first.get(key), optimizer.second.get(key)), strict=True
    ):
        assert (saved is None and now is None) or np.array_equal(saved, now)
    final = optimizer.step(skipped, moves[2], set(SHAPES))
    # the same as an optimizer that only ever saw this key's two rounds
    lone = alone.step({key: current[key]}, {key: moves[0][key]}, {key})
    lone = alone.step(lone, {key: moves[2][key]}, {key})
    np.testing.assert_array_equal(final[key], lone[key])


def test_fedavg_is_plain_averaging():
    current = {"head.w": np.zeros((2, 2), np.float32)}
    averaged = {"head.w": np.ones((2, 2), np.float32)}
    moved = ServerOptimizer().step(current, averaged, {"head.w"})
    np.testing.assert_array_equal(moved["head.w"], averaged["head.w"])


def test_the_strategy_moves_each_parameter_with_its_server_optimizer():
    config = {**RUN_CONFIG, "aggregation": "full-model", "transport": "fp32"}
    plain = strategy("full-model", transport="fp32")
    half = strategy(
        "full-model",
        transport="fp32",
        optimizer=ServerOptimizer(Settings("fedavgm", learning_rate=0.5)),
    )
    arrays, nodes = global_arrays(), contexts(config)
    replies, averaged = train_round(plain, arrays, nodes, server_round=1)
    half.configure_train(1, arrays, round_config(), LocalGrid(nodes))
    moved, _ = half.aggregate_train(1, replies)
    for key, array in arrays.items():
        start, mean = array.numpy(), averaged[key].numpy()
        expected = start + 0.5 * (mean - start)
        np.testing.assert_allclose(moved[key].numpy(), expected, rtol=1e-5, atol=1e-7)


def test_the_rounding_of_a_narrowed_copy_is_not_taken_for_an_update():
    """Under fp16 transport nodes start from the global rounded to fp16; nodes
    that send back exactly what they received leave FedAdam's global as it was
    (measured from the full-precision global, the rounding, amplified by
    1 / tau, would move it)."""
    config = {**RUN_CONFIG, "aggregation": "full-model", "transport": "fp16"}
    server = strategy(
        "full-model", transport="fp16", optimizer=ServerOptimizer(Settings("fedadam"))
    )
    arrays, nodes = global_arrays(), contexts(config)
    for server_round in (1, 2):
        messages = server.configure_train(
            server_round, arrays, round_config(), LocalGrid(nodes)
        )
        assert any(
            record.dtype == "float16"
            for record in messages[0].content.array_records["arrays"].values()
        )
        echoes = [
            reply(
                message,
                RecordDict(
                    {
                        "arrays": message.content.array_records["arrays"],
                        "metrics": MetricRecord(
                            {"train-examples": 10, "train-loss": 1.0}
                        ),
                    }
                ),
            )
            for message in messages
        ]
        moved, _ = server.aggregate_train(server_round, echoes)
        for key, array in arrays.items():
            np.testing.assert_array_equal(moved[key].numpy(), array.numpy())
        arrays = moved


def test_every_optimizer_the_config_accepts_exists_on_the_server():
    assert tuple(DEFAULT_LEARNING_RATES) == SERVER_OPTIMIZERS
    for name in SERVER_OPTIMIZERS:
        optimizer = ServerOptimizer(Settings(name))
        assert optimizer.learning_rate == DEFAULT_LEARNING_RATES[name]
    assert ServerOptimizer(Settings("fedadam", learning_rate=0.3)).learning_rate == 0.3
    with pytest.raises(ValueError, match="fedsgd"):
        ServerOptimizer(Settings("fedsgd"))
