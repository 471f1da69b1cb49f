"""BlockwiseStrategy: a Flower strategy aggregating a model block by block.

Built on ``flwr.serverapp.strategy.FedAvg`` by overriding its hooks; the round
loop (``run``) is Flower's ``Strategy.start`` from where the ``ServerState``
stands, so a run resumed from a checkpoint continues at its next round. Each
node is sent only the shared blocks it holds, and every parameter is averaged
over exactly the nodes that returned it. What happened is appended to the
state's ``RunRecord`` (``self.record``).

The blocks a round's aggregation produces are the blocks the next round trains
from, so a node that trains next round evaluates them when they arrive, before
training (``protocol.EVALUATE_FIRST``): round ``t``'s evaluation comes back with
round ``t+1``'s training replies, and ``evaluate`` messages (a second download
of the same blocks) go only to nodes that will not train next round and, after
the last round, to every node.
"""

import math
import time
from collections.abc import Callable, Collection, Iterable
from logging import INFO

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType
from flwr.app import MetricRecord as Metrics
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.supercore import log

from blossom_app.common import metrics as m
from blossom_app.common.blocks import Policy
from blossom_app.common.profile import describe
from blossom_app.common.protocol import EVALUATE_FIRST, EVALUATION, PERSONALIZATION
from blossom_app.common.transport import wire_dtype
from blossom_app.server.aggregation import BlockwiseMean, InvalidUpdate, check_update
from blossom_app.server.exchange import Exchange
from blossom_app.server.fleet import Fleet
from blossom_app.server.message_flow import stream
from blossom_app.server.server_state import ServerState


class BlockwiseStrategy(FedAvg):
    """Block-wise federated averaging for clients with different modality sets.

    Parameters
    ----------
    policy : Policy
        Which blocks are private (never sent, never aggregated).
    fleet : Fleet
        The participating nodes and the modalities each holds; looked up
        every round, so nodes that come and go are followed.
    held_keys : Callable[[tuple[str, ...]], Collection[str]]
        The parameter keys of a client model with the given modalities.
    num_rounds : int
        Rounds of this run (the last round is always evaluated).
    fraction_train : float (default: 1.0)
        Fraction of nodes sampled for training each round.
    evaluate_every : int (default: 1)
        Evaluate the personalized models every this many rounds.
    transport : str (default: "fp32")
        How shared blocks travel in train and evaluate messages (``transport.py``).
    state : ServerState | None (default: a fresh run: sampling seeded with 0,
        plain averaging)
        Where the run stands: the global parameters, the server optimizer
        (how each parameter moves towards its average), node sampling, the
        record (``server_state.py``). A loaded state resumes the run.
    """

    def __init__(
        self,
        policy: Policy,
        fleet: Fleet,
        held_keys: Callable[[tuple[str, ...]], Collection[str]],
        num_rounds: int,
        fraction_train: float = 1.0,
        evaluate_every: int = 1,
        transport: str = "fp32",
        state: ServerState | None = None,
    ) -> None:
        super().__init__(
            fraction_train=fraction_train,
            min_train_nodes=1,
            min_evaluate_nodes=1,
            min_available_nodes=1,
        )
        self.policy = policy
        self.fleet = fleet
        self.profiles = fleet.profiles
        self.num_rounds = num_rounds
        self.evaluate_every = evaluate_every
        self.transport = transport
        self.state = state or ServerState.fresh(fleet.profiles)
        self.optimizer = self.state.optimizer
        self.record = self.state.record
        self.evaluations = self.state.evaluations
        self.exchange = Exchange(policy, held_keys, fleet, self.record, transport)

    def summary(self) -> None:
        private = ", ".join(sorted(self.policy.private)) or "none"
        log(INFO, "\t├──> Policy: %s (private: %s)", self.policy.name, private)
        log(INFO, "\t├──> Transport of shared blocks: %s", self.transport)
        log(
            INFO,
            "\t├──> Server optimizer: %s (learning rate %g)",
            self.optimizer.name,
            self.optimizer.learning_rate,
        )
        log(
            INFO,
            "\t├──> Train fraction: %.2f, evaluate every %d round(s)",
            self.fraction_train,
            self.evaluate_every,
        )
        log(INFO, "\t└──> Nodes:")
        for line in describe(self.profiles.values()):
            log(INFO, "\t\t├── %s", line)

    def run(
        self,
        grid: Grid,
        config: ConfigRecord,
        timeout: float,
        checkpoint: Callable[[ServerState], object] | None = None,
    ) -> ArrayRecord:
        """The rounds after ``state.server_round`` up to ``num_rounds`` (every
        round, for a fresh state): Flower's ``Strategy.start`` loop, from where
        the state stands. ``checkpoint`` is called with the state after each
        round. Returns the final global parameters."""
        first = self.state.server_round + 1
        name = type(self).__name__
        log(INFO, "Starting %s at round %d of %d:", name, first, self.num_rounds)
        self.summary()
        for server_round in range(first, self.num_rounds + 1):
            log(INFO, "")
            log(INFO, "[ROUND %d/%d]", server_round, self.num_rounds)
            messages = self.configure_train(
                server_round, self.state.arrays, config, grid
            )
            replies = stream(grid, messages, timeout)
            arrays, metrics = self.aggregate_train(server_round, replies)
            if arrays is not None:
                self.state.arrays = arrays
                log(INFO, "\t└──> Training: %s", metrics)
            messages = self.configure_evaluate(
                server_round, self.state.arrays, config, grid
            )
            replies = stream(grid, messages, timeout)
            metrics = self.aggregate_evaluate(server_round, replies)
            if metrics is not None:
                log(INFO, "\t└──> Evaluation of round %d: %s", server_round, metrics)
            self.state.server_round = server_round
            if checkpoint is not None:
                checkpoint(self.state)
        return self.state.arrays

    def _evaluated(self, server_round: int) -> bool:
        """Whether the personalized models are evaluated after ``server_round``."""
        return server_round >= 1 and (
            server_round % self.evaluate_every == 0 or server_round == self.num_rounds
        )

    def _draw(self, nodes: list[int]) -> list[int]:
        """The nodes that train in a round, drawn from ``nodes`` by partition
        (the same seed samples the same clients, whatever their node ids)."""
        nodes = sorted(nodes, key=lambda node_id: self.profiles[node_id].partition_id)
        count = min(len(nodes), max(1, int(self.fraction_train * len(nodes))))
        return sorted(self.state.rng.sample(nodes, count))

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        nodes = self.exchange.present(server_round, MessageType.TRAIN, grid)
        drawn = self.state.drawn.pop(server_round, None)
        sampled = (
            self._draw(nodes) if drawn is None else [n for n in drawn if n in nodes]
        )
        log(INFO, "configure_train: %d of %d nodes", len(sampled), len(nodes))
        self.state.arrays = arrays  # what this round trains from
        config[EVALUATE_FIRST] = self._evaluated(server_round - 1)
        return self.exchange.send(
            MessageType.TRAIN, server_round, arrays, config, sampled
        )

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        if not self._evaluated(server_round):
            return []
        nodes = self.exchange.present(server_round, MessageType.EVALUATE, grid)
        if server_round < self.num_rounds:
            # the next round's nodes evaluate these blocks when they arrive
            drawn = self.state.drawn[server_round + 1] = self._draw(nodes)
            nodes = [node_id for node_id in nodes if node_id not in drawn]
        if not nodes:
            return []
        return self.exchange.send(
            MessageType.EVALUATE, server_round, arrays, config, nodes
        )

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, Metrics | None]:
        """Fold each usable reply into the block-wise mean as it comes (in
        partition order), then step the server optimizer; the replies also
        carry the trained nodes' evaluation of the previous round."""
        phase = MessageType.TRAIN
        sent = self.exchange.sent(phase, server_round)
        current = {key: array.numpy() for key, array in self.state.arrays.items()}
        private = set(self.policy.private_keys(current))
        wire = {
            key: wire_dtype(value.dtype, self.transport)
            for key, value in current.items()
        }
        mean, trained, losses = BlockwiseMean(current), set(), []
        previous = server_round - 1
        evaluated = self._evaluated(previous)
        busy = 0.0  # seconds spent on replies, not waiting for them
        answers = self.exchange.receive(
            phase, server_round, replies, m.TRAIN_EXAMPLES, (m.TRAIN_LOSS,)
        )
        for answer in answers:
            start = time.perf_counter()
            node_id, metrics, content = (
                answer.node_id,
                answer.metrics,
                answer.reply.content,
            )
            if evaluated:
                self.evaluations.collect(
                    previous,
                    node_id,
                    content.metric_records.get(EVALUATION),
                    content.config_records.get(PERSONALIZATION),
                )
            record = content.array_records.get("arrays", ArrayRecord())
            self.record.traffic(server_round, node_id, phase, "up", record)
            update = {key: array.numpy() for key, array in record.items()}
            try:
                check_update(update, current, sent[node_id], private, wire)
            except InvalidUpdate as error:
                self.record.reject(server_round, phase, node_id, str(error))
                continue
            mean.add(update, float(answer.weight))
            trained.update(update)
            losses.append((float(metrics[m.TRAIN_LOSS]), answer.weight))
            row = {m.column(m.TRAIN_EXAMPLES): answer.weight}
            for key in (m.TRAIN_LOSS, m.TRAIN_SECONDS):
                row[m.column(key)] = float(metrics.get(key, math.nan))
            row = self.record.client_row(server_round, node_id, **row)
            self.record.train.append(row)
            busy += time.perf_counter() - start
        start = time.perf_counter()
        result = None, None
        if losses:
            # what the nodes started from: the global as its message carried it
            received = {key: current[key].astype(wire[key]) for key in trained}
            merged = self.optimizer.step(current, mean.result(), trained, received)
            arrays = ArrayRecord({k: Array(v) for k, v in merged.items()})
            summary = {
                m.TRAIN_LOSS: m.weighted_mean(losses),
                m.TRAIN_EXAMPLES: sum(weight for _, weight in losses),
                m.TRAIN_CLIENTS: len(losses),
            }
            self.record.aggregated[server_round].update(summary)
            result = arrays, Metrics(summary)
        busy += time.perf_counter() - start
        self.record.timing[server_round]["aggregate"] = busy
        if evaluated:
            summary = self.evaluations.summarize(previous)
            if summary is not None:
                log(INFO, "\t└──> Evaluation of round %d: %s", previous, summary)
        return result

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> Metrics | None:
        for answer in self.exchange.receive(
            MessageType.EVALUATE, server_round, replies, None, ()
        ):
            self.evaluations.collect(
                server_round,
                answer.node_id,
                answer.metrics,
                answer.reply.content.config_records.get(PERSONALIZATION),
            )
        if server_round < self.num_rounds:
            return None  # completed by the next round's training replies
        return self.evaluations.summarize(server_round)
