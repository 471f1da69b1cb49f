"""What a node says about itself: the ``query.profile`` reply.

The node writes this record (``NodeProfile.to_record``) and the server reads it
(``NodeProfile.from_reply``), so the two cannot disagree.
"""

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

from flwr.app import ConfigRecord, Message, RecordDict

from blossom_app.common.blocks import format_modalities
from blossom_app.common.protocol import PROFILE_RECORD, SETUP_PROBLEM


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

    def to_record(self) -> RecordDict:
        """The reply content (the node id travels in the message metadata)."""
        values = asdict(self)
        del values["node_id"]
        values["modalities"] = self.label
        record = {key.replace("_", "-"): value for key, value in values.items()}
        return RecordDict({PROFILE_RECORD: ConfigRecord(record)})

    @classmethod
    def from_reply(cls, reply: Message) -> "NodeProfile":
        record = reply.content.config_records[PROFILE_RECORD]
        values = {
            field.name: field.type(record[field.name.replace("_", "-")])
            for field in fields(cls)
            if field.name not in ("node_id", "modalities")
        }
        return cls(
            node_id=reply.metadata.src_node_id,
            modalities=tuple(str(record["modalities"]).split("+")),
            **values,
        )


def problem_reply(error: Exception) -> RecordDict:
    """The profile reply of a node that cannot set up: ``error``'s message."""
    return RecordDict({SETUP_PROBLEM: ConfigRecord({"message": str(error)})})


def setup_problem(reply: Message) -> str | None:
    """The setup problem a node replied with instead of its profile, if any."""
    record = reply.content.config_records.get(SETUP_PROBLEM)
    return None if record is None else str(record["message"])


def describe(profiles: Iterable[NodeProfile]) -> list[str]:
    """One line per node, by partition: for logs and the strategy's summary."""
    return [
        f"node {p.node_id}: partition {p.partition_id}, {p.label}, "
        f"{p.train_examples} train / {p.test_examples} test, {p.device}, v{p.version}"
        for p in sorted(profiles, key=lambda p: p.partition_id)
    ]
