"""A client's private blocks, kept across rounds, and across server restarts.

Every message names the experiment and run (``protocol.EXPERIMENT``,
``run-index``): the state is filed under them, never under Flower's run id, so
a resumed run (a new Flower run) finds it and a new experiment or run starts
fresh. The state after a round's training is kept

- where the node has a disk for it, in ``<folder>/<experiment>/run-<k>/
  round-<r>.npz``, ``<folder>`` being ``<state-dir>/partition-<id>-<set>``
  (a device), or the same under the server's ``node-state-dir`` when the node
  shares the server's disk (a simulation);
- else in ``context.state`` (memory, for the rest of this Flower run).

Not both: a simulation keeps every node's ``Context`` in one process and
ships it to a ClientApp process with each message, so private blocks held
there would cost that process memory per client (1,000 clients: 0.26 GB) and
every message their serialization.

A message of round ``r`` reads the newest state of a round before ``r``
(training) or up to ``r`` (evaluation, export). So a node asked to train round
``r`` again, after the server restarted from its checkpoint, starts from the
state it had after round ``r-1``, even if it had saved round ``r`` already.
Kept on disk: the newest state of a round the server's checkpoint holds
(``protocol.CHECKPOINT_ROUND``) and every later one (two files with a
checkpoint every round); earlier runs of the experiment are deleted. With the
blocks goes how many local rounds they have trained.
"""

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context

from blossom_app.atomic_files import atomic_open
from blossom_app.common.protocol import CHECKPOINT_ROUND, EXPERIMENT, NODE_STATE_DIR

PRIVATE = "blossom.private"
META = "blossom.meta"
_ROUNDS = "__trained_rounds__"
_FILE = re.compile(r"round-(\d+)\.npz")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class PrivateState:
    """A client's private blocks (a state dict) and the local rounds they have
    trained in."""

    arrays: Mapping[str, torch.Tensor]
    rounds: int


class PrivateStore:
    """One client's private state in one experiment's run.

    ``folder``: the client's folder on disk (None: memory only). ``config``:
    the message's config (experiment, run index, the checkpointed round).
    """

    def __init__(self, context: Context, folder: Path | None, config: ConfigRecord):
        self.context = context
        self.experiment = str(config[EXPERIMENT])
        if not _NAME.fullmatch(self.experiment):  # it becomes a directory name
            raise ValueError(f"bad experiment name {self.experiment!r}")
        self.run_index = int(config["run-index"])
        self.checkpointed = int(config.get(CHECKPOINT_ROUND, 0))
        self.runs = None if folder is None else folder / self.experiment
        self.path = None if self.runs is None else self.runs / f"run-{self.run_index}"

    @classmethod
    def for_message(
        cls, context: Context, config: ConfigRecord, state_dir: Path | None, name: str
    ) -> "PrivateStore":
        """The store a message's ``config`` names: under ``state_dir`` (the
        node's), else under the server's ``node-state-dir`` if this node shares
        the server's disk (its results directory exists here), else memory."""
        root = state_dir
        shared = config.get(NODE_STATE_DIR)
        if root is None and shared and Path(str(shared)).parent.is_dir():
            root = Path(str(shared))
        return cls(context, None if root is None else root / name, config)

    def load(self, up_to: int) -> PrivateState | None:
        """The newest state saved after a round ``<= up_to``; None if none."""
        if self.path is None:
            meta = self.context.state.config_records.get(META)
            if (
                meta is None
                or PRIVATE not in self.context.state
                or meta["experiment"] != self.experiment
                or meta["run-index"] != self.run_index
                or meta["round"] > up_to
            ):
                return None
            arrays = self.context.state.array_records[PRIVATE]
            return PrivateState(arrays.to_torch_state_dict(), int(meta["rounds"]))
        rounds = [r for r in self._saved_rounds() if r <= up_to]
        if not rounds:
            return None
        with np.load(self._file(max(rounds)), allow_pickle=False) as saved:
            arrays = {k: torch.from_numpy(saved[k]) for k in saved if k != _ROUNDS}
            return PrivateState(arrays, int(saved[_ROUNDS]))

    def save(self, server_round: int, state: PrivateState) -> None:
        """Keep ``state`` as this client's state after ``server_round``."""
        if self.path is None:
            self.context.state[PRIVATE] = ArrayRecord(dict(state.arrays))
            self.context.state[META] = ConfigRecord(
                {
                    "experiment": self.experiment,
                    "run-index": self.run_index,
                    "round": server_round,
                    "rounds": state.rounds,
                }
            )
            return
        self.path.mkdir(parents=True, exist_ok=True)
        arrays = {key: value.cpu().numpy() for key, value in state.arrays.items()}
        with atomic_open(self._file(server_round), "wb") as handle:
            np.savez(handle, **{_ROUNDS: np.int64(state.rounds)}, **arrays)
        self._prune()

    def _file(self, server_round: int) -> Path:
        return self.path / f"round-{server_round}.npz"

    def _saved_rounds(self) -> list[int]:
        if self.path is None or not self.path.is_dir():
            return []
        found = (_FILE.fullmatch(p.name) for p in self.path.iterdir())
        return sorted(int(match.group(1)) for match in found if match)

    def _prune(self) -> None:
        """Delete what a resume can no longer need: states older than the
        newest one a checkpointed round would load, and earlier runs."""
        rounds = self._saved_rounds()
        needed = [r for r in rounds if r <= self.checkpointed]
        oldest = needed[-1] if needed else rounds[0]
        for server_round in rounds:
            if server_round < oldest:
                self._file(server_round).unlink(missing_ok=True)
        for run in self.runs.glob("run-*"):
            index = run.name.removeprefix("run-")
            if index.isdigit() and int(index) < self.run_index:
                shutil.rmtree(run, ignore_errors=True)
