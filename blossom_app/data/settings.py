"""Which data the clients train on: one frozen object for the whole run.

``DataSettings`` is built once from the validated run config
(``ExperimentConfig.data``); a node narrows it to its own share
(``NodeConfig.client_data``), and every reader of client data takes it whole
instead of a dozen keyword arguments.
"""

from dataclasses import dataclass

from blossom_app.benchmarks.task import Task


@dataclass(frozen=True)
class DataSettings:
    """The task's dataset from ``source`` (empty: the task's own), split
    train/test by ``test_fraction`` (and train/validation by
    ``validation_fraction``, 0 for none) with ``seed``, then partitioned among
    ``num_partitions`` clients by ``partitioner`` (``dirichlet`` with ``alpha``).
    """

    task: Task
    source: str = ""
    partitioner: str = "iid"
    num_partitions: int = 1
    alpha: float = 0.5
    seed: int = 0
    test_fraction: float = 0.3
    validation_fraction: float = 0.0

    @property
    def resolved_source(self) -> str:
        """``source``, or the task's own when empty."""
        return self.source or self.task.source
