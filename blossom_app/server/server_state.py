"""Everything the next round of a run depends on, in one object the strategy
owns, with ``save`` and ``load`` (the file: ``checkpoint.py``).

- ``run_index`` and ``server_round``: the run, and the last round it completed;
- ``arrays``: the global parameters after that round, in full precision;
- ``optimizer``: the server optimizer with each parameter's moments and steps;
- ``rng``: node sampling's random state, and ``drawn``: the nodes already drawn
  to train in a coming round;
- ``evaluations``: evaluations of a round whose rest rides on the next round's
  train replies;
- ``record``: every row the run has recorded so far, and its nodes' profiles.

Node ids change when a simulation restarts (and when an insecure SuperNode
does), so the file names nodes by partition: ``load`` maps each partition to
the node that holds it now, in the restored rows too.
"""

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord

from blossom_app.common.profile import NodeProfile
from blossom_app.reporting.run_record import RunRecord
from blossom_app.server.checkpoint import (
    CheckpointError,
    read_checkpoint,
    write_checkpoint,
)
from blossom_app.server.evaluations import RoundEvaluations
from blossom_app.server.server_optimizers import ServerOptimizer

#: Array names in the file: ``<prefix>:<parameter key>``.
GLOBAL, FIRST, SECOND = "global", "first", "second"
#: ``RunRecord`` fields saved as they are (lists of rows).
ROWS = ("train", "evaluate", "communication", "rejections", "models")
#: ``RunRecord`` fields keyed by round.
BY_ROUND = ("timing", "aggregated")


@dataclass
class ServerState:
    """A run's server side between two rounds (see the module docstring)."""

    run_index: int
    server_round: int
    arrays: ArrayRecord
    optimizer: ServerOptimizer
    rng: random.Random
    drawn: dict[int, list[int]]
    record: RunRecord
    evaluations: RoundEvaluations

    @classmethod
    def fresh(
        cls,
        profiles: Mapping[int, NodeProfile],
        *,
        run_index: int = 0,
        arrays: ArrayRecord | None = None,
        optimizer: ServerOptimizer | None = None,
        seed: int = 0,
    ) -> "ServerState":
        """A run before its first round: ``arrays`` as initialized, sampling
        seeded with ``seed``."""
        record = RunRecord(profiles)
        return cls(
            run_index=run_index,
            server_round=0,
            arrays=arrays if arrays is not None else ArrayRecord(),
            optimizer=optimizer or ServerOptimizer(),
            rng=random.Random(seed),
            drawn={},
            record=record,
            evaluations=RoundEvaluations(record),
        )

    def save(self, path: Path, run_config: Mapping[str, object]) -> int:
        """Write the checkpoint ``path`` for ``run_config``; its size in bytes."""
        partition = {n: p.partition_id for n, p in self.record.profiles.items()}
        arrays = {f"{GLOBAL}:{k}": v.numpy() for k, v in self.arrays.items()}
        arrays |= {f"{FIRST}:{k}": v for k, v in self.optimizer.first.items()}
        arrays |= {f"{SECOND}:{k}": v for k, v in self.optimizer.second.items()}
        version, internal, gauss = self.rng.getstate()
        state = {
            "run_index": self.run_index,
            "server_round": self.server_round,
            "steps": self.optimizer.steps,
            "rng": [version, list(internal), gauss],
            "drawn": {r: [partition[n] for n in ns] for r, ns in self.drawn.items()},
            "pending": self.evaluations.pending,
            "profiles": [
                {**asdict(p), "modalities": list(p.modalities)}
                for p in self.record.profiles.values()
            ],
            **{name: getattr(self.record, name) for name in ROWS + BY_ROUND},
        }
        return write_checkpoint(path, arrays, state, run_config)

    @classmethod
    def load(
        cls,
        path: Path,
        profiles: dict[int, NodeProfile],
        optimizer: ServerOptimizer,
    ) -> "ServerState":
        """The state saved in ``path``, its nodes mapped by partition onto the
        fleet's ``profiles`` now; ``optimizer`` (fresh) gets the saved moments."""
        header, saved = read_checkpoint(path)
        state = header["state"]
        node = _nodes_by_partition(state["profiles"], profiles, path)

        def renamed(row: dict) -> dict:
            if row.get("partition_id") in node:
                row["node_id"] = node[row["partition_id"]]
            return row

        record = RunRecord(profiles)
        for name in ROWS:
            getattr(record, name).extend(renamed(row) for row in state[name])
        for name in BY_ROUND:
            by_round = getattr(record, name)
            by_round.update({int(r): values for r, values in state[name].items()})
        evaluations = RoundEvaluations(record)
        evaluations.pending = {
            int(server_round): [
                (p, values, np.asarray(confusion, dtype=np.int64))
                for p, values, confusion in rows
            ]
            for server_round, rows in state["pending"].items()
        }
        arrays = {}
        for name, value in saved.items():
            prefix, _, key = name.partition(":")
            if prefix == GLOBAL:
                arrays[key] = Array(value)
            else:
                (optimizer.first if prefix == FIRST else optimizer.second)[key] = value
        optimizer.steps = {k: int(v) for k, v in state["steps"].items()}
        version, internal, gauss = state["rng"]
        rng = random.Random()
        rng.setstate((version, tuple(internal), gauss))
        drawn = {
            int(r): sorted(node[p] for p in partitions if p in node)
            for r, partitions in state["drawn"].items()
        }
        return cls(
            run_index=int(state["run_index"]),
            server_round=int(state["server_round"]),
            arrays=ArrayRecord(arrays),
            optimizer=optimizer,
            rng=rng,
            drawn=drawn,
            record=record,
            evaluations=evaluations,
        )


def _nodes_by_partition(
    saved: list[dict], profiles: Mapping[int, NodeProfile], path: Path
) -> dict[int, int]:
    """Partition -> the node id that holds it now; an error unless each
    partition is one node's and holds what it held when the checkpoint was
    written (modalities, windows)."""
    now: dict[int, NodeProfile] = {}
    for profile in profiles.values():
        if profile.partition_id in now:
            other = now[profile.partition_id].node_id
            raise CheckpointError(
                f"Nodes {other} and {profile.node_id} both say they are partition "
                f"{profile.partition_id}: a resumed run finds each client by its "
                "partition. Give each SuperNode its own partition-id."
            )
        now[profile.partition_id] = profile
    compared = [f.name for f in fields(NodeProfile) if f.name in _SAME]
    for before in saved:
        after = now.get(before["partition_id"])
        if after is None:
            continue  # not connected now: recorded as missing, as any gone node
        was = {k: before[k] for k in compared}
        was["modalities"] = tuple(was["modalities"])
        changed = [k for k in compared if was[k] != getattr(after, k)]
        if changed:
            details = ", ".join(
                f"{k} {was[k]!r} then, {getattr(after, k)!r} now" for k in changed
            )
            raise CheckpointError(
                f"Partition {after.partition_id} is not the client it was when "
                f"{path} was written ({details}): resuming would mix two clients' "
                "histories. Resume with the same data and node config."
            )
    return {partition: p.node_id for partition, p in now.items()}


#: What must not change about a client between a checkpoint and its resume.
_SAME = ("modalities", "train_examples", "test_examples")
