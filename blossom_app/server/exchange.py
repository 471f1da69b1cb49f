"""The block-wise exchange with nodes: send each node its shared blocks, screen
what comes back.

Used by the strategy's hooks (train, evaluate) and after a run (export). Every
message carries only the shared parameters the node's model has; every phase
remembers what it sent, so replies are screened against it and a node that
does not answer is recorded, with the phase's round-trip time. Messages go out
in partition order and usable replies are handed on in that order, each as
soon as those before it are in (``message_flow.stream`` delivers them one at a
time), so sums over replies repeat exactly whatever order nodes answer in, and
only replies that arrive ahead of their turn are held.
"""

import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass

from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from blossom_app.common.blocks import Policy
from blossom_app.common.transport import encode
from blossom_app.reporting.run_record import RunRecord
from blossom_app.server.fleet import Fleet
from blossom_app.server.replies import NO_REPLY, Accepted, screen


def phase_of(message_type: str) -> str:
    """The phase a message type is recorded under: ``train``, ``evaluate``,
    ``export`` (for ``query.export``)."""
    return message_type.rpartition(".")[2]


@dataclass(frozen=True)
class Dispatch:
    """What one phase of one round sent: the keys per node, and when."""

    server_round: int
    sent: dict[int, set[str]]  # in partition order
    started: float
    messages: list[Message]


class Exchange:
    """Messages to and replies from the nodes of ``fleet``, recorded in ``record``.

    ``held_keys`` maps a modality set to the parameter keys of a client model
    with those modalities; ``policy`` says which of them are shared;
    ``transport`` how they travel (``transport.py``).
    """

    def __init__(
        self,
        policy: Policy,
        held_keys: Callable[[tuple[str, ...]], Collection[str]],
        fleet: Fleet,
        record: RunRecord,
        transport: str = "fp32",
    ) -> None:
        self.policy = policy
        self._held_keys = held_keys
        self.fleet = fleet
        self.record = record
        self.transport = transport
        self._dispatched: dict[str, Dispatch] = {}

    def present(self, server_round: int, phase: str, grid: Grid) -> list[int]:
        """The profiled nodes connected now (new ones profiled first); each gone
        one is recorded as missing from ``phase`` of ``server_round``."""
        nodes, gone = self.fleet.present(grid)
        for node_id in gone:
            self.record.reject(server_round, phase, node_id, "not connected")
        return nodes

    def shared_for(self, node_id: int, arrays: ArrayRecord) -> ArrayRecord:
        """The shared parameters of ``arrays`` that ``node_id``'s model has."""
        held = self._held_keys(self.record.profiles[node_id].modalities)
        keys = [k for k in self.policy.shared_keys(arrays.keys()) if k in held]
        return ArrayRecord({key: arrays[key] for key in keys})

    def send(
        self,
        message_type: str,
        server_round: int,
        arrays: ArrayRecord,
        config: ConfigRecord,
        node_ids: Iterable[int],
        transport: str | None = None,
    ) -> list[Message]:
        """One message per node, in partition order, with only the shared
        blocks it holds, as they travel under ``transport`` (default: the
        exchange's)."""
        phase = phase_of(message_type)
        config["server-round"] = server_round
        wire = encode(arrays, transport or self.transport)
        messages, sent = [], {}
        profiles = self.record.profiles
        for node_id in sorted(node_ids, key=lambda n: profiles[n].partition_id):
            record = self.shared_for(node_id, wire)
            sent[node_id] = set(record.keys())
            self.record.traffic(server_round, node_id, phase, "down", record)
            content = RecordDict({"arrays": record, "config": config})
            message = Message(content, dst_node_id=node_id, message_type=message_type)
            messages.append(message)
        self._dispatched[phase] = Dispatch(
            server_round, sent, time.perf_counter(), messages
        )
        return messages

    def _dispatch(self, message_type: str, server_round: int) -> Dispatch | None:
        """What ``message_type`` sent in ``server_round`` (None if nothing)."""
        dispatch = self._dispatched.get(phase_of(message_type))
        if dispatch is None or dispatch.server_round != server_round:
            return None
        return dispatch

    def sent(self, message_type: str, server_round: int) -> dict[int, set[str]]:
        """The keys ``message_type`` sent each node in ``server_round`` ({} if
        it sent nothing there)."""
        dispatch = self._dispatch(message_type, server_round)
        return {} if dispatch is None else dispatch.sent

    def receive(
        self,
        message_type: str,
        server_round: int,
        replies: Iterable[Message],
        weight_key: str | None,
        required: Collection[str],
    ) -> Iterator[Accepted]:
        """The usable replies to what ``message_type`` sent in ``server_round``
        (none if it sent nothing there), in partition order, each as soon as
        the replies of the nodes before it are in. Records every rejection,
        including each node that did not answer, and, once ``replies`` are
        exhausted, the round trip's seconds."""
        phase = phase_of(message_type)
        dispatch = self._dispatch(message_type, server_round)
        if dispatch is None:
            return
        # the node a reply answers for is the destination of the message it
        # replies to: an error the SuperLink makes up for an unavailable node
        # comes from the SuperLink. Message ids exist once the Grid pushed
        # them, in order, while the replies stream in: index them as they come
        destination: dict[str, int] = {}
        indexed = 0

        def node_of(reply: Message) -> int:
            nonlocal indexed
            answered = reply.metadata.reply_to_message_id
            messages = dispatch.messages
            while answered not in destination and indexed < len(messages):
                message = messages[indexed]
                if not message.metadata.message_id:
                    break  # not pushed yet
                destination[message.metadata.message_id] = message.metadata.dst_node_id
                indexed += 1
            return destination.get(answered, reply.metadata.src_node_id)

        order = list(dispatch.sent)
        turn = 0  # order[turn] is the next node to hand on
        arrived: dict[int, Accepted | None] = {}  # None: rejected
        for reply in replies:
            node_id = node_of(reply)
            verdict = screen(reply, weight_key, required, node_id)
            if node_id not in dispatch.sent and not isinstance(verdict, str):
                verdict = f"a reply to a {phase} message it was not sent"
            if isinstance(verdict, str):
                self.record.reject(server_round, phase, node_id, verdict)
                verdict = None
            arrived[node_id] = verdict
            while turn < len(order) and order[turn] in arrived:
                if (answer := arrived.pop(order[turn])) is not None:
                    yield answer
                turn += 1
        elapsed = time.perf_counter() - dispatch.started
        self.record.timing[server_round][phase] = elapsed
        for node_id in order[turn:]:
            if node_id not in arrived:
                self.record.reject(server_round, phase, node_id, NO_REPLY)
            elif (answer := arrived.pop(node_id)) is not None:
                yield answer
