"""Screening a round's replies against what the server sent.

Pure: given the nodes a phase was sent to and the replies that came back,
say which replies are usable and why each other node is not. Nothing is
recorded here; the strategy records the verdicts.
"""

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from flwr.app import Message, MetricRecord

NO_REPLY = "no reply in time"


@dataclass(frozen=True)
class Accepted:
    """A usable reply: its node, message, metrics and example count."""

    node_id: int
    reply: Message
    metrics: MetricRecord
    weight: int


def problem(
    metrics: MetricRecord, weight_key: str | None, required: Collection[str]
) -> str | None:
    """Why ``metrics`` are unusable (``None`` if usable): a ``weight_key`` that
    is no positive integer, or a missing ``required`` key."""
    weight = metrics.get(weight_key, 0) if weight_key else 0
    missing = [key for key in required if key not in metrics]
    if weight_key and (not isinstance(weight, int) or weight <= 0):
        return f"invalid {weight_key} {weight!r}"
    if missing:
        return f"metrics lack {missing}"
    return None


def screen(
    replies: Iterable[Message],
    sent_to: Collection[int],
    weight_key: str | None,
    required: Collection[str],
    node_of: Callable[[Message], int] = lambda reply: reply.metadata.src_node_id,
) -> tuple[list[Accepted], list[tuple[int, str]]]:
    """Split replies into usable ones and ``(node_id, reason)`` rejections.

    A reply is usable when it is no error, its ``metrics`` hold every
    ``required`` key and, unless ``weight_key`` is None, a positive integer
    ``weight_key`` (the reply's weight; 0 without one). Every node in
    ``sent_to`` that did not reply is rejected with ``NO_REPLY``. ``node_of``
    says which node a reply answers for (an error the SuperLink makes up for
    an unavailable node comes from the SuperLink, not from that node).
    """
    accepted: list[Accepted] = []
    rejected: list[tuple[int, str]] = []
    answered: set[int] = set()
    for reply in replies:
        node_id = node_of(reply)
        answered.add(node_id)
        if reply.has_error():
            rejected.append((node_id, reply.error.reason))
            continue
        metrics = reply.content.metric_records.get("metrics", MetricRecord())
        reason = problem(metrics, weight_key, required)
        if reason:
            rejected.append((node_id, reason))
        else:
            weight = metrics[weight_key] if weight_key else 0
            accepted.append(Accepted(node_id, reply, metrics, weight))
    rejected += [(node_id, NO_REPLY) for node_id in sorted(set(sent_to) - answered)]
    return accepted, rejected
