"""BlockwiseStrategy: a Flower strategy aggregating a model block by block.

Built on ``flwr.serverapp.strategy.FedAvg`` by overriding its hooks; the round
loop is Flower's ``Strategy.start``. Each node is sent only the shared blocks it
holds, and every parameter is averaged over exactly the nodes that returned it.
What happened is appended to a ``RunRecord`` (``self.record``).
"""

import math
import random
import time
from collections.abc import Callable, Collection, Iterable
from logging import INFO

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType
from flwr.app import MetricRecord as Metrics
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.supercore import log

from . import metrics as m
from .aggregation import InvalidUpdate, aggregate_by_key, check_update
from .blocks import Policy
from .exchange import Exchange
from .fleet import Fleet, describe
from .run_record import RunRecord

#: Per-client values of an evaluate reply (besides its examples and confusion).
EVALUATED = (m.TEST_LOSS, m.ACCURACY, m.MACRO_F1)


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
    seed : int (default: 0)
        Seed of node sampling.
    """

    def __init__(
        self,
        policy: Policy,
        fleet: Fleet,
        held_keys: Callable[[tuple[str, ...]], Collection[str]],
        num_rounds: int,
        fraction_train: float = 1.0,
        evaluate_every: int = 1,
        seed: int = 0,
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
        self._rng = random.Random(seed)
        self._global = ArrayRecord()
        self.record = RunRecord(fleet.profiles)
        self.exchange = Exchange(policy, held_keys, fleet, self.record)

    def summary(self) -> None:
        private = ", ".join(sorted(self.policy.private)) or "none"
        log(INFO, "\t├──> Policy: %s (private: %s)", self.policy.name, private)
        log(
            INFO,
            "\t├──> Train fraction: %.2f, evaluate every %d round(s)",
            self.fraction_train,
            self.evaluate_every,
        )
        log(INFO, "\t└──> Nodes:")
        for line in describe(self.profiles.values()):
            log(INFO, "\t\t├── %s", line)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        nodes = self.exchange.present(server_round, MessageType.TRAIN, grid)
        # drawn by partition: the same seed samples the same clients
        nodes.sort(key=lambda node_id: self.profiles[node_id].partition_id)
        count = min(len(nodes), max(1, int(self.fraction_train * len(nodes))))
        sampled = sorted(self._rng.sample(nodes, count))
        log(INFO, "configure_train: %d of %d nodes", len(sampled), len(nodes))
        self._global = arrays
        return self.exchange.send(
            MessageType.TRAIN, server_round, arrays, config, sampled
        )

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        if server_round % self.evaluate_every and server_round != self.num_rounds:
            return []
        nodes = self.exchange.present(server_round, MessageType.EVALUATE, grid)
        return self.exchange.send(
            MessageType.EVALUATE, server_round, arrays, config, nodes
        )

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, Metrics | None]:
        phase = MessageType.TRAIN
        sent, accepted = self.exchange.receive(
            phase, server_round, replies, m.TRAIN_EXAMPLES, (m.TRAIN_LOSS,)
        )
        start = time.perf_counter()
        current = {key: array.numpy() for key, array in self._global.items()}
        private = set(self.policy.private_keys(current))
        updates, losses = [], []
        for answer in accepted:
            node_id, metrics = answer.node_id, answer.metrics
            record = answer.reply.content.array_records.get("arrays", ArrayRecord())
            self.record.traffic(server_round, node_id, phase, "up", record)
            update = {key: array.numpy() for key, array in record.items()}
            try:
                check_update(update, current, sent[node_id], private)
            except InvalidUpdate as error:
                self.record.reject(server_round, phase, node_id, str(error))
                continue
            updates.append((update, float(answer.weight)))
            losses.append((float(metrics[m.TRAIN_LOSS]), answer.weight))
            row = {m.column(m.TRAIN_EXAMPLES): answer.weight}
            for key in (m.TRAIN_LOSS, m.TRAIN_SECONDS):
                row[m.column(key)] = float(metrics.get(key, math.nan))
            row = self.record.client_row(server_round, node_id, **row)
            self.record.train.append(row)
        result = None, None
        if updates:
            merged = aggregate_by_key(current, updates)
            arrays = ArrayRecord({k: Array(v) for k, v in merged.items()})
            summary = {
                m.TRAIN_LOSS: m.weighted_mean(losses),
                m.TRAIN_EXAMPLES: sum(weight for _, weight in losses),
                m.TRAIN_CLIENTS: len(updates),
            }
            result = arrays, Metrics(summary)
        self.record.timing[server_round]["aggregate"] = time.perf_counter() - start
        return result

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> Metrics | None:
        phase = MessageType.EVALUATE
        _, accepted = self.exchange.receive(
            phase, server_round, replies, m.TEST_EXAMPLES, (*EVALUATED, m.CONFUSION)
        )
        clients, confusions = [], []
        for answer in accepted:
            like = confusions[0] if confusions else None
            try:
                cells = answer.metrics[m.CONFUSION]
                confusions.append(m.confusion_matrix(cells, like))
            except ValueError as error:
                self.record.reject(server_round, phase, answer.node_id, str(error))
                continue
            values = {key: float(answer.metrics[key]) for key in EVALUATED}
            clients.append({m.TEST_EXAMPLES: answer.weight, **values})
            columns = {m.column(key): value for key, value in clients[-1].items()}
            row = self.record.client_row(server_round, answer.node_id, **columns)
            self.record.evaluate.append(row)
        if not clients:
            return None
        return Metrics(m.summarize_evaluation(clients, confusions))
