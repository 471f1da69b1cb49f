"""Server optimizers applied block-wise: FedAvgM, FedAdam, FedYogi, FedAdagrad
(Reddi et al. 2021, "Adaptive Federated Optimization"), per parameter.

Each round the averaged update of a parameter (``aggregation.BlockwiseMean``,
over exactly the nodes that trained it) is turned into a pseudo-gradient and
stepped with that parameter's own optimizer state. A parameter nobody trained
this round keeps its value and its state, so an encoder held by few clients
is not pushed by momentum built from rounds it sat out. Where every node holds
every block, the result equals Flower's ``FedAvgM``, ``FedAdam``, ``FedYogi``
and ``FedAdagrad`` (tested), including their step counting.
"""

from collections.abc import Collection, Mapping

import numpy as np
from numpy.typing import NDArray

from blossom_app.common.config import ServerOptimizerSettings

#: Optimizer -> Flower's default server learning rate (``eta``).
DEFAULT_LEARNING_RATES = {
    "fedavg": 1.0,
    "fedavgm": 1.0,
    "fedadam": 0.1,
    "fedyogi": 0.01,
    "fedadagrad": 0.1,
}


class ServerOptimizer:
    """The optimizer ``settings`` name (one of ``common.config.SERVER_OPTIMIZERS``)
    with its per-key state: momentum or m_t, v_t, and updates so far. One per
    run, fresh.

    A ``settings.learning_rate`` of 0 means the optimizer's default
    (DEFAULT_LEARNING_RATES). ``momentum`` is FedAvgM's; ``beta_1``, ``beta_2``
    and ``tau`` the adaptive optimizers' (first and second moment decay, and
    the denominator's floor).
    """

    def __init__(self, settings: ServerOptimizerSettings | None = None) -> None:
        self.settings = settings or ServerOptimizerSettings()
        self.name = self.settings.name
        if self.name not in DEFAULT_LEARNING_RATES:
            raise ValueError(f"unknown server optimizer {self.name!r}")
        self.learning_rate = (
            self.settings.learning_rate or DEFAULT_LEARNING_RATES[self.name]
        )
        self.first: dict[str, NDArray] = {}
        self.second: dict[str, NDArray] = {}
        self.steps: dict[str, int] = {}

    def step(
        self,
        current: Mapping[str, NDArray],
        averaged: Mapping[str, NDArray],
        trained: Collection[str],
        received: Mapping[str, NDArray] | None = None,
    ) -> dict[str, NDArray]:
        """The new global parameters: ``current`` moved by the averaged update
        for the keys in ``trained``; every other key as it is. The update is
        ``averaged`` less ``received``, the parameters as the nodes received
        them (default ``current``): under a lossy transport the rounding of the
        copy sent is not an update, and an adaptive optimizer would amplify it."""
        received = current if received is None else received
        result = dict(current)
        for key in trained:
            if self.name == "fedavg" or not np.issubdtype(
                current[key].dtype, np.floating
            ):
                result[key] = averaged[key]
                continue
            value = current[key].astype(np.float64)
            delta = averaged[key].astype(np.float64) - received[key].astype(np.float64)
            result[key] = self._move(key, value, delta).astype(current[key].dtype)
        return result

    def _move(self, key: str, value: NDArray, delta: NDArray) -> NDArray:
        s = self.settings
        steps = self.steps[key] = self.steps.get(key, 0) + 1
        if self.name == "fedavgm":
            # Flower's convention: the first round's momentum is the gradient
            gradient = -delta
            if s.momentum > 0:
                previous = self.first.get(key)
                if previous is not None:
                    gradient = s.momentum * previous + gradient
                self.first[key] = gradient
            return value - self.learning_rate * gradient
        m = s.beta_1 * self.first.get(key, 0.0) + (1 - s.beta_1) * delta
        self.first[key] = m
        v = self.second.get(key, np.zeros_like(delta))
        squared = delta**2
        if self.name == "fedadam":
            v = s.beta_2 * v + (1 - s.beta_2) * squared
        elif self.name == "fedyogi":
            v = v - (1.0 - s.beta_2) * squared * np.sign(v - squared)
        else:  # fedadagrad
            v = v + squared
        self.second[key] = v
        rate = self.learning_rate
        if self.name == "fedadam":  # bias correction, counted as Flower does
            rate *= np.sqrt(1 - s.beta_2 ** (steps + 1.0)) / (
                1 - s.beta_1 ** (steps + 1.0)
            )
        return value + rate * m / (np.sqrt(v) + s.tau)
