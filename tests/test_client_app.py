"""The real ClientApp handlers, driven in-process by the real strategy's messages:
private blocks persist across rounds in context.state, differ between clients,
reset with a new run, survive a restart through state-dir, never leave."""

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, RecordDict
from rounds import (
    NODES,
    RUN_CONFIG,
    LocalGrid,
    contexts,
    global_arrays,
    round_config,
    strategy,
    train_round,
)

from blossom_app.client import local_client
from blossom_app.client.client_app import app as client_app
from blossom_app.client.client_state import PRIVATE, PrivateState, PrivateStore
from blossom_app.client.local_client import LocalClient
from blossom_app.errors import ConfigError

ACC, GYRO, BOTH = NODES


def private_of(context: Context) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in context.state[PRIVATE].items()}


def test_private_blocks_persist_across_rounds_and_differ_between_clients():
    server, nodes = strategy("private-head-fusion"), contexts()
    replies, arrays = train_round(server, global_arrays(), nodes, server_round=1)
    after_round_1 = {node_id: private_of(ctx) for node_id, ctx in nodes.items()}

    # private blocks are fusion + head (and the input normalization), kept per
    # client; replies carry encoders only
    for private in after_round_1.values():
        assert private and all(
            k.startswith(("fusion.", "head.", "normalizers.")) for k in private
        )
    for msg in replies:
        assert all(k.startswith("encoders.") for k in msg.content["arrays"])
    heads = [after_round_1[n]["head.2.weight"] for n in NODES]
    assert not np.allclose(heads[0], heads[1]) and not np.allclose(heads[1], heads[2])

    # round 2 starts from round 1's private blocks ...
    for node_id, ctx in nodes.items():
        msg = next(
            m
            for m in server.configure_train(2, arrays, round_config(), LocalGrid())
            if m.metadata.dst_node_id == node_id
        )
        client = LocalClient.from_context(ctx)
        private = client.private_store(round_config()).load(up_to=1)
        model = client.personalized_model(0, msg.content["arrays"], private)
        for key, value in after_round_1[node_id].items():
            np.testing.assert_array_equal(model.state_dict()[key].numpy(), value)
    # ... and training moves them further
    train_round(server, arrays, nodes, server_round=2)
    for node_id, ctx in nodes.items():
        before, after = after_round_1[node_id], private_of(ctx)
        assert before.keys() == after.keys()
        assert not np.allclose(before["head.2.weight"], after["head.2.weight"])
        # one SGD round with a small lr moves weights by little, not back to init
        drift = np.abs(before["head.2.weight"] - after["head.2.weight"]).max()
        assert drift < 0.5


def test_personalized_evaluation_uses_the_private_blocks():
    server, nodes = strategy("private-head"), contexts()
    _, arrays = train_round(server, global_arrays(), nodes, server_round=1)
    messages = server.configure_evaluate(2, arrays, round_config(), LocalGrid())
    results = {}
    for msg in messages:
        context = nodes[msg.metadata.dst_node_id]
        with_private = client_app(msg, context).content["metrics"]
        fresh = Context(
            1, context.node_id, context.node_config, RecordDict(), RUN_CONFIG
        )
        without = client_app(msg, fresh).content["metrics"]
        results[msg.metadata.dst_node_id] = (
            with_private["test-loss"],
            without["test-loss"],
        )
    assert all(a != b for a, b in results.values())


def test_a_new_run_index_starts_from_fresh_private_blocks():
    nodes, fresh = contexts(), contexts()
    train_round(strategy("private-head"), global_arrays(), nodes, server_round=1)
    # run 1 on nodes that trained in run 0 == run 1 on nodes that never trained
    for clients in (nodes, fresh):
        train_round(strategy("private-head"), global_arrays(43), clients, 1, 1)
    for node_id in NODES:
        continued, new = private_of(nodes[node_id]), private_of(fresh[node_id])
        for key in new:
            np.testing.assert_array_equal(continued[key], new[key])
    assert nodes[ACC].state.config_records["blossom.meta"]["run-index"] == 1


def test_state_dir_keeps_personalization_across_a_supernode_restart(tmp_path):
    server = strategy("private-head")
    nodes = contexts()
    for ctx in nodes.values():
        ctx.node_config["state-dir"] = str(tmp_path / f"node-{ctx.node_id}")
    _, arrays = train_round(server, global_arrays(), nodes, server_round=1)
    # kept on the node's disk, not in its Context as well
    assert all(PRIVATE not in ctx.state for ctx in nodes.values())

    restarted = {
        node_id: Context(1, node_id, ctx.node_config, RecordDict(), RUN_CONFIG)
        for node_id, ctx in nodes.items()
    }
    messages = server.configure_evaluate(1, arrays, round_config(), LocalGrid())
    for msg in messages:
        node_id = msg.metadata.dst_node_id
        assert (
            client_app(msg, restarted[node_id]).content["metrics"]["test-loss"]
            == client_app(msg, nodes[node_id]).content["metrics"]["test-loss"]
        )
    folder = tmp_path / f"node-{GYRO}" / "partition-1-gyro"
    [saved_file] = folder.glob("*/run-0/round-1.npz")  # <experiment>/run-0
    with np.load(saved_file) as on_disk:
        assert {"head.0.weight", "head.0.bias"} <= set(on_disk.files)
        assert not any(key.startswith("encoders.") for key in on_disk.files)
        assert int(on_disk["__trained_rounds__"]) == 1
    # the restarted nodes train on from round 1's blocks: their count goes on
    train_round(server, arrays, restarted, server_round=2)
    [second] = folder.glob("*/run-0/round-2.npz")
    with np.load(second) as on_disk:
        assert int(on_disk["__trained_rounds__"]) == 2


@pytest.mark.parametrize("bad", ["acc,ecg", "", "ACC"])
def test_unknown_node_config_modality_is_an_error_reply_naming_the_fix(bad):
    server = strategy("full-model")
    nodes = contexts()
    nodes[ACC].node_config["modalities"] = bad
    messages = server.configure_train(1, global_arrays(), round_config(), LocalGrid())
    msg = next(m for m in messages if m.metadata.dst_node_id == ACC)
    with pytest.raises(ConfigError, match="'modalities'.*--node-config"):
        client_app(msg, nodes[ACC])


def test_private_state_is_filed_per_experiment_run_and_round(tmp_path):
    def context() -> Context:  # a node's context in a new Flower run: empty
        return Context(7, 1, {}, RecordDict(), {})

    node = context()

    def store(ctx=node, experiment="exp-a", run=0, checkpointed=0) -> PrivateStore:
        config = {"run-index": run, "checkpoint-round": checkpointed}
        return PrivateStore(
            ctx, tmp_path, ConfigRecord({"experiment": experiment, **config})
        )

    def state(rounds: int) -> PrivateState:
        head = torch.full((2,), float(rounds))
        return PrivateState({"head.0.bias": head}, rounds)

    for server_round in range(1, 5):  # the server checkpoints every round
        store(checkpointed=server_round - 1).save(server_round, state(server_round))
    run_0 = tmp_path / "exp-a" / "run-0"
    # kept: the state a resume from the checkpoint (round 3) needs, and later
    assert sorted(p.name for p in run_0.iterdir()) == ["round-3.npz", "round-4.npz"]
    # the server died after checkpointing round 3 and asks for round 4 again:
    # a new Flower run (empty memory) and this one (round 4 in memory) both
    # start from the state after round 3
    for ctx in (context(), node):
        redo = store(ctx, checkpointed=3).load(up_to=3)
        assert redo.rounds == 3 and redo.arrays["head.0.bias"][0] == 3
    assert store(context(), checkpointed=3).load(up_to=4).rounds == 4  # evaluate
    # another experiment, or another run of it, starts fresh
    assert store(context(), experiment="exp-b").load(up_to=9) is None
    assert store(context(), run=1).load(up_to=9) is None
    store(run=1).save(1, state(1))  # run 1 saves: run 0's state goes
    assert not run_0.exists() and (tmp_path / "exp-a" / "run-1").is_dir()
    with pytest.raises(ValueError, match="experiment"):  # never a path outside
        store(experiment="../elsewhere")


def test_a_process_keeps_client_set_ups_within_its_budget_of_data_bytes():
    items = [
        (tuple(sorted(c.run_config.items())), tuple(sorted(c.node_config.items())))
        for c in contexts().values()
    ]
    roomy = local_client._Setups(budget=10**9)
    kept = [roomy.get(*key) for key in items]
    assert all(roomy.get(*key) is setup for key, setup in zip(items, kept, strict=True))

    one = kept[0].data.nbytes
    tight = local_client._Setups(budget=one)  # room for the first client only
    first = tight.get(*items[0])
    assert tight.get(*items[0]) is first
    tight.get(*items[1])  # over the budget: the least recently served goes
    again = tight.get(*items[0])
    assert again is not first
    assert again.data.nbytes == one  # set up again, the same data


def test_clients_of_one_architecture_share_a_working_model_but_nothing_else():
    """A process loads each message's weights into one model per architecture:
    what one client trained must not show in another's personalized model."""
    nodes = [
        LocalClient.from_context(
            Context(1, 200 + p, {"partition-id": p, "num-partitions": 3,
                                 "modalities": "acc"}, RecordDict(), RUN_CONFIG)
        )
        for p in (0, 1)
    ]  # fmt: skip
    arrays = global_arrays()
    shared = ArrayRecord({k: v for k, v in arrays.items() if "encoders.acc." in k})
    first, second = nodes
    state = second.personalized_model(0, shared).state_dict()
    before = {key: value.clone() for key, value in state.items()}
    model = first.personalized_model(0, shared)
    first.train(model, 0, 1, shared)  # changes the weights, leaves gradients
    again = second.personalized_model(0, shared)
    assert again is model  # the same working model ...
    for key, value in again.state_dict().items():  # ... with the second's weights
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert all(p.grad is None for p in again.parameters())
