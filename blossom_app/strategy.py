"""BlockwiseStrategy: a Flower strategy aggregating a model block by block.

Built on ``flwr.serverapp.strategy.FedAvg`` by overriding its hooks; the round
loop is Flower's ``Strategy.start``. Each node is sent only the shared blocks it
holds, and every parameter is averaged over exactly the nodes that returned it.
"""

import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from logging import INFO, WARNING

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.supercore import log

from .aggregation import InvalidUpdate, aggregate_by_key, check_update
from .blocks import Policy, block_of, format_modalities
from .config import ModalityMix
from .errors import ConfigError
from .training import macro_f1

PROFILE = f"{MessageType.QUERY}.profile"


@dataclass(frozen=True)
class NodeProfile:
    """What a node reported in its ``profile`` reply."""

    node_id: int
    modalities: tuple[str, ...]
    partition_id: int
    train_examples: int
    test_examples: int
    device: str
    version: str

    @property
    def label(self) -> str:
        return format_modalities(self.modalities)

    @classmethod
    def from_reply(cls, reply: Message) -> "NodeProfile":
        profile = reply.content.config_records["profile"]
        return cls(
            node_id=reply.metadata.src_node_id,
            modalities=tuple(str(profile["modalities"]).split("+")),
            partition_id=int(profile["partition-id"]),
            train_examples=int(profile["train-examples"]),
            test_examples=int(profile["test-examples"]),
            device=str(profile["device"]),
            version=str(profile["version"]),
        )


class DiscoveryError(RuntimeError):
    """Nodes could not be profiled; the message says which and why."""


def _profile(grid: Grid, node_ids: list[int], timeout: float) -> list[NodeProfile]:
    queries = [
        Message(RecordDict(), dst_node_id=node_id, message_type=PROFILE)
        for node_id in node_ids
    ]
    replies = list(grid.send_and_receive(queries, timeout=timeout))
    failures = [
        f"node {reply.metadata.src_node_id}: {reply.error.reason}"
        for reply in replies
        if reply.has_error()
    ]
    if failures:
        raise DiscoveryError("Profiling failed on " + "; ".join(failures))
    missing = sorted(set(node_ids) - {r.metadata.src_node_id for r in replies})
    if missing:
        raise DiscoveryError(f"No profile reply from nodes {missing} in {timeout} s")
    return [NodeProfile.from_reply(reply) for reply in replies]


def discover_nodes(
    grid: Grid, min_nodes: int, timeout: float
) -> dict[int, NodeProfile]:
    """Profile nodes as they connect until ``min_nodes`` are known.

    Each node is asked once, as soon as it is connected, so a misconfigured
    node (a node-config modality the dataset lacks, a mix that does not match
    the federation) stops the run at once with its own error message.
    """
    deadline = time.monotonic() + timeout
    profiles: dict[int, NodeProfile] = {}
    while True:
        new = sorted(set(grid.get_node_ids()) - set(profiles))
        if new:
            profiles.update((p.node_id, p) for p in _profile(grid, new, timeout))
        if len(profiles) >= min_nodes:
            return profiles
        if time.monotonic() > deadline:
            raise DiscoveryError(
                f"Only {len(profiles)} of {min_nodes} nodes connected within "
                f"{timeout:.0f} s. Start more SuperNodes or change modality-mix."
            )
        log(INFO, "Waiting for nodes: %d of %d connected", len(profiles), min_nodes)
        time.sleep(1.0)


def check_fleet(profiles: dict[int, NodeProfile], mix: ModalityMix) -> None:
    """Fail unless the nodes hold the modality sets ``mix`` counts.

    In simulation the mix assigns the sets, so they always match; deployed
    nodes declare theirs in node config, and results filed under a mix the
    fleet does not have would mislead.
    """
    fleet = Counter(profile.modalities for profile in profiles.values())
    wanted = Counter(dict(mix.groups))
    if fleet != wanted:
        have = ",".join(f"{'+'.join(m)}={n}" for m, n in sorted(fleet.items()))
        raise ConfigError(
            "modality-mix",
            mix.text,
            f"the modality sets the nodes declare: '{have}'",
            f"Run with --run-config \"modality-mix='{have}'\".",
        )


def _block_bytes(arrays: ArrayRecord) -> dict[str, int]:
    """Serialized bytes per block; keys of no block count as ``unknown``."""
    sizes: dict[str, int] = defaultdict(int)
    for key, array in arrays.items():
        try:
            block = block_of(key)
        except ValueError:
            block = "unknown"
        sizes[block] += len(array.data)
    return dict(sizes)


class BlockwiseStrategy(FedAvg):
    """Block-wise federated averaging for clients with different modality sets.

    Parameters
    ----------
    policy : Policy
        Which blocks are private (never sent, never aggregated).
    profiles : dict[int, NodeProfile]
        Every participating node and the modalities it holds.
    held_keys : Callable[[tuple[str, ...]], Collection[str]]
        The parameter keys of a client model with the given modalities (its
        encoders, and the parts of fusion and head it has).
    num_rounds : int
        Rounds of this run (the last round is always evaluated).
    fraction_train : float (default: 1.0)
        Fraction of nodes sampled for training each round.
    evaluate_every : int (default: 1)
        Evaluate the personalized models every this many rounds.
    seed : int (default: 0)
        Seed of node sampling.

    After ``start``, ``train_rows`` (accepted training per client),
    ``client_rows`` (evaluation per client), ``communication``, ``timing`` and
    ``rejections`` hold what happened, per round.
    """

    def __init__(
        self,
        policy: Policy,
        profiles: dict[int, NodeProfile],
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
        self.profiles = profiles
        self._held_keys = held_keys
        self.num_rounds = num_rounds
        self.evaluate_every = evaluate_every
        self._rng = random.Random(seed)
        self._global: ArrayRecord = ArrayRecord()
        self._sent: dict[int, set[str]] = {}
        self._awaiting: set[int] = set()
        self._clock = 0.0
        self.train_rows: list[dict[str, object]] = []
        self.client_rows: list[dict[str, object]] = []
        self.communication: list[dict[str, object]] = []
        self.timing: dict[int, dict[str, float]] = defaultdict(dict)
        self.rejections: list[dict[str, object]] = []

    def summary(self) -> None:
        log(
            INFO,
            "\t├──> Policy: %s (private: %s)",
            self.policy.name,
            ", ".join(sorted(self.policy.private)) or "none",
        )
        log(
            INFO,
            "\t├──> Train fraction: %.2f, evaluate every %d round(s)",
            self.fraction_train,
            self.evaluate_every,
        )
        log(INFO, "\t└──> Nodes:")
        for profile in sorted(self.profiles.values(), key=lambda p: p.partition_id):
            log(
                INFO,
                "\t\t├── node %d: partition %d, %s, %d train / %d test, %s, v%s",
                profile.node_id,
                profile.partition_id,
                profile.label,
                profile.train_examples,
                profile.test_examples,
                profile.device,
                profile.version,
            )

    # ---- sending ---------------------------------------------------------

    def _messages(
        self,
        server_round: int,
        arrays: ArrayRecord,
        config: ConfigRecord,
        node_ids: Iterable[int],
        message_type: str,
    ) -> list[Message]:
        """One message per node with only the shared blocks that node holds."""
        self._global = arrays
        config["server-round"] = server_round
        shared = self.policy.shared_keys(arrays.keys())
        messages = []
        for node_id in node_ids:
            held = self._held_keys(self.profiles[node_id].modalities)
            keys = [key for key in shared if key in held]
            record = ArrayRecord({key: arrays[key] for key in keys})
            self._sent[node_id] = set(keys)
            self._log_bytes(server_round, node_id, message_type, "down", record)
            content = RecordDict({"arrays": record, "config": config})
            messages.append(
                Message(content, dst_node_id=node_id, message_type=message_type)
            )
        self._awaiting = set(node_ids)
        self._clock = time.perf_counter()
        return messages

    def _log_bytes(
        self,
        server_round: int,
        node_id: int,
        phase: str,
        direction: str,
        record: ArrayRecord,
    ) -> None:
        for block, size in sorted(_block_bytes(record).items()):
            self.communication.append(
                {
                    "round": server_round,
                    "node_id": node_id,
                    "partition_id": self.profiles[node_id].partition_id,
                    "phase": phase,
                    "direction": direction,
                    "block": block,
                    "bytes": size,
                }
            )

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        nodes = sorted(self.profiles)
        count = max(1, int(self.fraction_train * len(nodes)))
        sampled = sorted(self._rng.sample(nodes, count))
        log(INFO, "configure_train: %d of %d nodes", len(sampled), len(nodes))
        return self._messages(server_round, arrays, config, sampled, MessageType.TRAIN)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        if server_round % self.evaluate_every and server_round != self.num_rounds:
            return []
        return self._messages(
            server_round, arrays, config, sorted(self.profiles), MessageType.EVALUATE
        )

    # ---- receiving -------------------------------------------------------

    def _reject(self, server_round: int, phase: str, node_id: int, reason: str) -> None:
        log(
            WARNING,
            "Round %d (%s): rejected reply from node %d: %s",
            server_round,
            phase,
            node_id,
            reason,
        )
        self.rejections.append(
            {
                "round": server_round,
                "phase": phase,
                "node_id": node_id,
                "reason": reason,
            }
        )

    def _valid(
        self,
        server_round: int,
        phase: str,
        replies: Iterable[Message],
        required: tuple[str, ...],
    ) -> Iterator[tuple[Message, MetricRecord, int]]:
        """Replies whose metrics have a positive ``num-examples`` and every
        ``required`` key. Every other reply, and every node that did not reply
        in time, is rejected (logged and recorded in ``rejections``)."""
        for reply in replies:
            node_id = reply.metadata.src_node_id
            self._awaiting.discard(node_id)
            if reply.has_error():
                self._reject(server_round, phase, node_id, reply.error.reason)
                continue
            metrics = reply.content.metric_records.get("metrics", MetricRecord())
            weight = metrics.get("num-examples")
            missing = [key for key in required if key not in metrics]
            if not isinstance(weight, int) or weight <= 0:
                reason = f"invalid num-examples {weight!r}"
                self._reject(server_round, phase, node_id, reason)
            elif missing:
                reason = f"metrics lack {missing}"
                self._reject(server_round, phase, node_id, reason)
            else:
                yield reply, metrics, weight
        for node_id in sorted(self._awaiting):
            self._reject(server_round, phase, node_id, "no reply in time")
        self._awaiting.clear()

    def _client_row(self, server_round: int, node_id: int, **values) -> dict:
        profile = self.profiles[node_id]
        return {
            "round": server_round,
            "node_id": node_id,
            "partition_id": profile.partition_id,
            "modalities": profile.label,
            **values,
        }

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        start = time.perf_counter()
        self.timing[server_round]["train"] = start - self._clock
        current = {key: array.numpy() for key, array in self._global.items()}
        private = set(self.policy.private_keys(current))
        updates, losses = [], []
        valid = self._valid(server_round, "train", replies, ("train-loss",))
        for reply, metrics, weight in valid:
            node_id = reply.metadata.src_node_id
            record = reply.content.array_records.get("arrays", ArrayRecord())
            self._log_bytes(server_round, node_id, MessageType.TRAIN, "up", record)
            update = {key: array.numpy() for key, array in record.items()}
            try:
                check_update(update, current, self._sent.get(node_id, set()), private)
            except InvalidUpdate as error:
                self._reject(server_round, "train", node_id, str(error))
                continue
            updates.append((update, float(weight)))
            losses.append((float(metrics["train-loss"]), weight))
            self.train_rows.append(
                self._client_row(
                    server_round,
                    node_id,
                    train_examples=weight,
                    train_loss=float(metrics["train-loss"]),
                    train_seconds=float(metrics.get("train-seconds", math.nan)),
                )
            )
        if not updates:
            self.timing[server_round]["aggregate"] = time.perf_counter() - start
            return None, None
        merged = aggregate_by_key(current, updates)
        arrays = ArrayRecord({key: Array(value) for key, value in merged.items()})
        total = sum(weight for _, weight in losses)
        metrics = MetricRecord(
            {
                "train-loss": sum(loss * w for loss, w in losses) / total,
                "num-examples": total,
                "num-updates": len(updates),
            }
        )
        self.timing[server_round]["aggregate"] = time.perf_counter() - start
        return arrays, metrics

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        replies = list(replies)
        if not replies:  # a round that is not evaluated (evaluate-every)
            return None
        self.timing[server_round]["evaluate"] = time.perf_counter() - self._clock
        rows = []
        pooled: np.ndarray | None = None
        required = ("loss", "accuracy", "macro-f1", "confusion")
        for reply, metrics, weight in self._valid(
            server_round, "evaluate", replies, required
        ):
            confusion = np.asarray(metrics["confusion"], dtype=np.int64)
            side = math.isqrt(confusion.size)
            expected = confusion.size if pooled is None else pooled.size
            if side * side != confusion.size or confusion.size != expected:
                reason = f"confusion matrix of {confusion.size} cells"
                self._reject(
                    server_round, "evaluate", reply.metadata.src_node_id, reason
                )
                continue
            confusion = confusion.reshape(side, side)
            pooled = confusion if pooled is None else pooled + confusion
            rows.append(
                self._client_row(
                    server_round,
                    reply.metadata.src_node_id,
                    num_examples=weight,
                    loss=float(metrics["loss"]),
                    accuracy=float(metrics["accuracy"]),
                    macro_f1=float(metrics["macro-f1"]),
                )
            )
        if not rows or pooled is None:
            return None
        self.client_rows.extend(rows)
        total = sum(row["num_examples"] for row in rows)
        summary = {"num-examples": total, "num-clients": len(rows)}
        for name, column in (
            ("loss", "loss"),
            ("accuracy", "accuracy"),
            ("macro-f1", "macro_f1"),
        ):
            summary[name] = sum(r[column] * r["num_examples"] for r in rows) / total
        summary["pooled-accuracy"] = float(np.trace(pooled)) / max(int(pooled.sum()), 1)
        summary["pooled-macro-f1"] = macro_f1(pooled)
        return MetricRecord(summary)
