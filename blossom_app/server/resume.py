"""Checkpoints as the rounds go, and where a resumed experiment continues.

``Checkpoints`` writes the server's state (``ServerState.save``) to the
experiment's ``checkpoint.npz`` as each run starts, every ``checkpoint-every``
rounds and after a run's last round, and tells the nodes (through the round
config) the last round it holds, so they keep the private state a resume
would need. ``find_resume`` checks a ``resume`` directory against this run's
config and says where to continue, or that the experiment already finished;
``starting_state`` is the state each run starts from.
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from logging import INFO, WARNING
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord
from flwr.supercore import log

from blossom_app import __version__
from blossom_app.common.config import ExperimentConfig
from blossom_app.common.model import build_model
from blossom_app.common.profile import NodeProfile
from blossom_app.common.protocol import CHECKPOINT_ROUND
from blossom_app.errors import ConfigError
from blossom_app.reporting.layout import CHECKPOINT, CONFIG, is_complete, read_config
from blossom_app.server.checkpoint import (
    MAY_DIFFER,
    CheckpointError,
    config_differences,
    read_checkpoint,
)
from blossom_app.server.server_optimizers import ServerOptimizer
from blossom_app.server.server_state import ServerState


class Checkpoints:
    """Save ``ServerState`` to ``path`` when due: every ``every`` rounds (0:
    never), and after round ``num_rounds`` and round 0 (a run's start).
    ``config`` is the round config the nodes get; ``run_config`` is saved
    with each checkpoint."""

    def __init__(
        self,
        path: Path,
        run_config: Mapping[str, object],
        every: int,
        num_rounds: int,
        config: ConfigRecord,
    ) -> None:
        self.path, self.run_config = path, run_config
        self.every, self.num_rounds, self.config = every, num_rounds, config

    def __call__(self, state: ServerState) -> None:
        server_round = state.server_round
        if not self.every:  # no resume: the nodes need no older state
            self.config[CHECKPOINT_ROUND] = server_round
            return
        if server_round % self.every and server_round != self.num_rounds:
            return
        start = time.perf_counter()
        size = state.save(self.path, self.run_config)
        seconds = time.perf_counter() - start
        if server_round:
            state.record.timing[server_round]["checkpoint"] = seconds
        self.config[CHECKPOINT_ROUND] = server_round
        log(
            INFO,
            "Checkpoint of run %d after round %d: %.2f MB in %.3f s",
            state.run_index,
            server_round,
            size / 1e6,
            seconds,
        )


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed experiment continues: the run index and the last round
    its checkpoint holds; ``finished``: nothing is left to do."""

    path: Path
    run_index: int
    server_round: int
    finished: bool = False

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT


def find_resume(
    directory: str,
    run_config: Mapping[str, object],
    defaults: Mapping[str, object],
) -> ResumePoint:
    """The experiment ``directory`` (``resume``) and where it continues.

    Raises ``ConfigError`` if it is no results directory and
    ``CheckpointError`` if its checkpoint cannot be used: missing, damaged,
    of a newer schema, of another config than the directory's, or of another
    config than ``run_config`` (each differing key named; ``defaults``: the
    app's, for keys one side lacks).
    """
    path = Path(directory).expanduser().resolve()
    if not (path / CONFIG).is_file():
        raise ConfigError(
            "resume",
            directory,
            "a BLOSSOM results directory (one holding config.toml)",
            "Give the directory a run printed as 'BLOSSOM results directory: ...'.",
        )
    if is_complete(path):
        return ResumePoint(path, -1, -1, finished=True)
    header, _ = read_checkpoint(path / CHECKPOINT)  # all of it: damage shows now
    if other := config_differences(header["config"], read_config(path), defaults):
        raise CheckpointError(
            f"{path / CHECKPOINT} belongs to another experiment: its config is not "
            f"the one in {path / CONFIG} ({'; '.join(other)}). Put back that "
            "experiment's checkpoint, or start the run again without resume."
        )
    differences = config_differences(header["config"], run_config, defaults)
    if differences:
        raise CheckpointError(
            f"This run's config is not the one {path} ran with:\n  "
            + "\n  ".join(differences)
            + "\nResume with the same config: `blossom run --resume <dir>` "
            "reads it from config.toml; with `flwr run`, pass those keys again. "
            f"Keys that may differ: {', '.join(MAY_DIFFER)}."
        )
    if header.get("version") != __version__:
        log(
            WARNING,
            "The checkpoint was written by BLOSSOM %s; this is %s: the rounds "
            "after it are computed by different code",
            header.get("version"),
            __version__,
        )
    state = header["state"]
    return ResumePoint(path, int(state["run_index"]), int(state["server_round"]))


def starting_state(
    config: ExperimentConfig,
    run_index: int,
    profiles: dict[int, NodeProfile],
    resumed: ResumePoint | None,
    checkpoints: Checkpoints,
) -> ServerState:
    """The state run ``run_index`` starts from: its checkpoint's when the
    experiment ``resumed`` died in this run, else a fresh one (the initial
    model of the run's seed), checkpointed at once."""
    optimizer = ServerOptimizer(config.server_optimizer)
    if resumed is not None and run_index == resumed.run_index:
        state = ServerState.load(resumed.checkpoint, profiles, optimizer)
        checkpoints.config[CHECKPOINT_ROUND] = state.server_round
        return state
    seed = config.run_seed(run_index)
    model = build_model(config.task, config.task.modality_names, config.fusion, seed)
    state = ServerState.fresh(
        profiles,
        run_index=run_index,
        arrays=ArrayRecord(model.state_dict()),
        optimizer=optimizer,
        seed=seed,
    )
    checkpoints(state)
    return state
