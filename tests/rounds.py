"""In-process rounds: the real strategy's messages handed to the real ClientApp."""

import tomllib
from functools import cache, partial
from pathlib import Path
from uuid import uuid4

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

from blossom_app.benchmarks import get_task
from blossom_app.client.client_app import app as client_app
from blossom_app.common.modality_mix import parse_mix
from blossom_app.common.model import build_model, parameter_keys
from blossom_app.common.policies import make_policy
from blossom_app.common.profile import NodeProfile
from blossom_app.common.protocol import EXPERIMENT
from blossom_app.server.fleet import Fleet
from blossom_app.server.message_flow import stream
from blossom_app.server.server_optimizers import ServerOptimizer
from blossom_app.server.server_state import ServerState
from blossom_app.server.strategy import BlockwiseStrategy

WATCH = get_task("watch")
DEFAULTS = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())[
    "tool"
]["flwr"]["app"]["config"]
RUN_CONFIG = {
    **DEFAULTS,
    # named, not the defaults: the rounds these tests drive are of this policy
    "aggregation": "private-head-fusion",
    "personalization": "fixed",
    "modality-mix": "1-1-1",
    "num-server-rounds": 2,
    "local-epochs": 1,
    "batch-size": 64,
}
# node id -> modalities dealt by the 1-1-1 mix to partitions 0, 1, 2
NODES = {101: ("acc",), 102: ("gyro",), 103: ("acc", "gyro")}


def profiles() -> dict[int, NodeProfile]:
    return {
        node_id: NodeProfile(node_id, mods, index, 100, 30, "cpu", "0.1.0")
        for index, (node_id, mods) in enumerate(NODES.items())
    }


def strategy(
    policy: str, seed: int = 0, optimizer: ServerOptimizer | None = None, **kwargs
) -> BlockwiseStrategy:
    """The real strategy over the three NODES, fresh (sampling seeded with
    ``seed``, ``optimizer``'s state empty)."""
    kwargs.setdefault("transport", RUN_CONFIG["transport"])
    fleet = Fleet(profiles(), parse_mix("1-1-1", WATCH), timeout=60)
    return BlockwiseStrategy(
        make_policy(policy, "", WATCH.modality_names),
        fleet,
        cache(partial(parameter_keys, WATCH, fusion="attention")),
        num_rounds=2,
        state=ServerState.fresh(fleet.profiles, seed=seed, optimizer=optimizer),
        **kwargs,
    )


def round_config(run_index: int = 0, **values) -> ConfigRecord:
    """What the ServerApp puts in every message's config: run and experiment."""
    return ConfigRecord({"run-index": run_index, EXPERIMENT: "tests", **values})


def global_arrays(seed: int = 42) -> ArrayRecord:
    model = build_model(WATCH, WATCH.modality_names, "attention", seed)
    return ArrayRecord(model.state_dict())


def contexts(run_config: dict | None = None) -> dict[int, Context]:
    return {
        node_id: Context(
            run_id=1,
            node_id=node_id,
            node_config={"partition-id": index, "num-partitions": 3},
            state=RecordDict(),
            run_config=run_config or RUN_CONFIG,
        )
        for index, node_id in enumerate(NODES)
    }


def train_round(
    server: BlockwiseStrategy,
    arrays: ArrayRecord,
    nodes: dict[int, Context],
    server_round: int,
    run_index: int = 0,
) -> tuple[list[Message], ArrayRecord | None]:
    """Send, train on every node, aggregate; return the replies and new arrays."""
    config = round_config(run_index)
    messages = server.configure_train(server_round, arrays, config, LocalGrid(nodes))
    replies = [client_app(msg, nodes[msg.metadata.dst_node_id]) for msg in messages]
    new_arrays, _ = server.aggregate_train(server_round, replies)
    return replies, new_arrays


def reply(to: Message, content: RecordDict) -> Message:
    return Message(content, reply_to=to)


class LocalGrid:
    """A Grid whose nodes are ``nodes`` (node id -> Context, default: a fresh
    context per node of NODES); each message is answered in-process by the
    real ClientApp when it is pushed (``answer``), and its reply waits to be
    pulled."""

    def __init__(self, nodes: dict[int, Context] | None = None) -> None:
        self.nodes = contexts() if nodes is None else nodes
        self.waiting: dict[str, Message] = {}  # message id -> its reply

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)

    def answer(self, message: Message) -> Message:
        return client_app(message, self.nodes[message.metadata.dst_node_id])

    def push_messages(self, messages) -> list[str]:
        for message in messages:
            message.metadata.__dict__["_message_id"] = uuid4().hex
            self.waiting[message.metadata.message_id] = self.answer(message)
        return [message.metadata.message_id for message in messages]

    def pull_messages(self, message_ids) -> list[Message]:
        """The replies to ``message_ids`` in, in the order of their messages."""
        wanted = set(message_ids)
        return [self.waiting.pop(i) for i in list(self.waiting) if i in wanted]

    def send_and_receive(self, messages, timeout=60.0) -> list[Message]:
        return list(stream(self, messages, timeout))
