"""The record of one run: what the strategy's hooks saw, row by row.

The strategy appends to a ``RunRecord``; reporting writes it to CSV
(``reporting.output.ExperimentOutput.write_run``) and never looks at the
strategy itself. Rows use the CSV column names (``metrics.column``).
"""

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from flwr.app import ArrayRecord
from flwr.supercore import log

from blossom_app.common.blocks import block_of
from blossom_app.common.profile import NodeProfile

Row = dict[str, object]


def block_bytes(arrays: ArrayRecord) -> dict[str, int]:
    """Serialized bytes per block; keys of no block count as ``unknown``."""
    sizes: dict[str, int] = defaultdict(int)
    for key, array in arrays.items():
        try:
            block = block_of(key)
        except ValueError:
            block = "unknown"
        sizes[block] += len(array.data)
    return dict(sizes)


@dataclass
class RunRecord:
    """Rows of one run, per round.

    ``train``: accepted training per client; ``evaluate``: evaluation per
    client; ``communication``: bytes per node, phase, direction and block;
    ``timing``: seconds per round and phase; ``rejections``: every reply not
    used (and every node that did not answer), with the reason; ``models``:
    each node's export report (where its personalized model is);
    ``aggregated``: per round, the training and evaluation summaries.
    """

    profiles: Mapping[int, NodeProfile]
    train: list[Row] = field(default_factory=list)
    evaluate: list[Row] = field(default_factory=list)
    communication: list[Row] = field(default_factory=list)
    timing: dict[int, dict[str, float]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    rejections: list[Row] = field(default_factory=list)
    models: list[Row] = field(default_factory=list)
    aggregated: dict[int, dict[str, float]] = field(
        default_factory=lambda: defaultdict(dict)
    )

    def client_row(self, server_round: int, node_id: int, **values: object) -> Row:
        """A row naming the round and the client, with ``values``."""
        profile = self.profiles[node_id]
        return {
            "round": server_round,
            "node_id": node_id,
            "partition_id": profile.partition_id,
            "modalities": profile.label,
            **values,
        }

    def traffic(
        self,
        server_round: int,
        node_id: int,
        phase: str,
        direction: str,
        arrays: ArrayRecord,
    ) -> None:
        """Count the bytes of ``arrays`` sent ``down`` to or ``up`` from a node."""
        for block, size in sorted(block_bytes(arrays).items()):
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

    def reject(self, server_round: int, phase: str, node_id: int, reason: str) -> None:
        """Log and record a reply that is not used, or a node that did not reply."""
        log(
            logging.WARNING,
            "Round %d (%s): rejected reply from node %d: %s",
            server_round,
            phase,
            node_id,
            reason,
        )
        profile = self.profiles.get(node_id)
        self.rejections.append(
            {
                "round": server_round,
                "phase": phase,
                "node_id": node_id,
                "partition_id": "" if profile is None else profile.partition_id,
                "reason": reason,
            }
        )
