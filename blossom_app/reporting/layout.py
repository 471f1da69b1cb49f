"""The results tree: where an experiment's files live and what they are called.

```
<root>/<dataset>/<partitioner>/<mix>/<aggregation>/<timestamp>/
    config.toml  run.log  aggregated_metrics.csv  modality_metrics.csv  *.png
    checkpoint.npz  [node-state/]   (the server's state; simulated nodes' state)
    run_<k>/  aggregated_metrics.csv  client_metrics.csv  communication.csv
              timing.csv  [rejections.csv]  [models.csv]  *.png
              [models/partition-<id>-<set>/  model.onnx  model.json  model.pt]
<root>/<dataset>/<partitioner>/comparison/   (written by ``blossom compare``)
```

The top-level ``aggregated_metrics.csv`` (averaged over runs) is written last,
when the experiment has finished: its presence marks the experiment complete.
"""

import hashlib
import os
import tomllib
from pathlib import Path

RESULTS_ENV = "BLOSSOM_RESULTS_DIR"

CONFIG = "config.toml"
LOG = "run.log"
AGGREGATED = "aggregated_metrics.csv"
MODALITIES = "modality_metrics.csv"
CLIENTS = "client_metrics.csv"
COMMUNICATION = "communication.csv"
TIMING = "timing.csv"
REJECTIONS = "rejections.csv"
MODELS = "models.csv"
COMPARISON = "comparison"
#: The server's state after the last checkpointed round (``server.checkpoint``).
CHECKPOINT = "checkpoint.npz"
#: Where simulated nodes (no ``state-dir``, the server's disk) keep their
#: private state (``client.client_state``); the server never reads it.
NODE_STATE = "node-state"

#: Written last by ``ExperimentOutput.finish``: the experiment is complete.
COMPLETED_MARKER = AGGREGATED

#: Directory levels between the results root and an experiment's timestamp.
LEVELS = ("dataset", "partitioner", "mix", "aggregation")


def results_root(configured: str) -> Path:
    """``results-dir``, else ``$BLOSSOM_RESULTS_DIR``, else ``~/blossom-results``.

    A relative path resolves against the current working directory (for the
    ServerApp, that depends on where the SuperLink was started): prefer
    absolute paths.
    """
    root = configured or os.environ.get(RESULTS_ENV, "") or "~/blossom-results"
    return Path(root).expanduser().resolve()


def cell_dir(root: Path, dataset: str, partitioner: str, mix: str, policy: str) -> Path:
    """Directory holding every experiment (one per timestamp) of one grid cell."""
    return root / dataset / partitioner / mix / policy


def experiment_name(experiment: Path) -> str:
    """A name unique to an experiment directory, the same when it is resumed:
    its timestamp and a digest of its path (nodes file private state under it)."""
    digest = hashlib.sha256(str(experiment.resolve()).encode()).hexdigest()[:8]
    return f"{experiment.name}-{digest}"


def labels(experiment: Path) -> dict[str, str]:
    """``{dataset, partitioner, mix, aggregation}`` of an experiment directory."""
    return dict(zip(LEVELS, experiment.parts[-len(LEVELS) - 1 : -1], strict=True))


def describe(experiment: Path) -> str:
    """``watch / iid / 3-3-4 / private-head`` for plot titles and messages."""
    return " / ".join(labels(experiment).values())


def is_complete(experiment: Path) -> bool:
    """Whether the experiment finished (its completion marker exists)."""
    return (experiment / COMPLETED_MARKER).is_file()


def read_config(experiment: Path) -> dict[str, object]:
    """The run config the experiment ran with (its ``config.toml``)."""
    with (experiment / CONFIG).open("rb") as handle:
        return tomllib.load(handle)


def run_dirs(experiment: Path) -> list[Path]:
    """``run_0``, ``run_1``, ... of an experiment, in run order."""
    runs = [p for p in experiment.glob("run_*") if p.name[4:].isdigit()]
    return sorted(runs, key=lambda p: int(p.name[4:]))


def find_experiments(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Experiment directories in or under ``paths``: ``(complete, incomplete)``.

    An experiment directory is one holding a ``config.toml``; each list is sorted.
    """
    found = {config.parent.resolve() for path in paths for config in path.rglob(CONFIG)}
    complete = sorted(p for p in found if is_complete(p))
    return complete, sorted(found - set(complete))
