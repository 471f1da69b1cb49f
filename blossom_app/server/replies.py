"""Screening a round's replies against what the server sent.

Pure: say whether a reply is usable and, if not, why. Nothing is recorded
here; the exchange records the verdicts.
"""

from collections.abc import Collection
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
    reply: Message, weight_key: str | None, required: Collection[str], node_id: int
) -> Accepted | str:
    """``reply`` as an ``Accepted`` answer from ``node_id``, or why it is unusable.

    A reply is usable when it is no error, its ``metrics`` hold every
    ``required`` key and, unless ``weight_key`` is None, a positive integer
    ``weight_key`` (the reply's weight; 0 without one).
    """
    if reply.has_error():
        return reply.error.reason
    metrics = reply.content.metric_records.get("metrics", MetricRecord())
    reason = problem(metrics, weight_key, required)
    if reason:
        return reason
    weight = metrics[weight_key] if weight_key else 0
    return Accepted(node_id, reply, metrics, weight)
