"""Adaptive personalization: each client chooses, block by block, whether its
personalized model takes the federation's version of a block or its own.

A client's *own* version of a block is the one it trained last round (kept in
its private state, never sent). Under ``personalization = "adaptive"`` the
client holds out a validation split carved from its training examples (cut
from them in time, as the test split is, but at their start: no window shares
samples with one it trains on, and those it trains on stay next to the test
ones; ``data/splits.py``) and,
each time it builds its personalized model, tries every combination of
own/federation versions of its shared blocks, keeping the one with the lowest
validation loss (ties: the fewest own blocks, so the federation is preferred).
Choices may differ between clients and change from round to round; the
evaluation replies report them (``own_blocks`` in ``client_metrics.csv``).

The client then trains the model it chose and sends that model's shared
blocks, as under any policy (a block it keeps as its own is the one it trains
and sends back), never a block the policy makes private.
"""

from collections.abc import Callable, Mapping
from itertools import combinations

import torch

from .blocks import NORMALIZATION, block_of, format_blocks
from .model import MultimodalModel

#: Past this many candidate blocks the search is greedy, block by block,
#: instead of over every combination (2 ** blocks evaluations).
EXHAUSTIVE_LIMIT = 6


def choose_blocks(
    model: MultimodalModel,
    own: Mapping[str, torch.Tensor],
    candidates: list[str],
    validation_loss: Callable[[MultimodalModel], float],
) -> frozenset[str]:
    """Load into ``model`` (which holds the federation's blocks) the own
    versions (``own``) of the ``candidates`` blocks that minimize
    ``validation_loss``; return the blocks taken from ``own``."""
    federated = {key: value.clone() for key, value in model.state_dict().items()}

    def loss_of(blocks: frozenset[str]) -> float:
        model.load_state_dict(_mixed(federated, own, blocks))
        return validation_loss(model)

    best, best_loss = frozenset(), loss_of(frozenset())
    if len(candidates) <= EXHAUSTIVE_LIMIT:
        trials = (
            frozenset(blocks)
            for size in range(1, len(candidates) + 1)
            for blocks in combinations(sorted(candidates), size)
        )
        for blocks in trials:
            if (loss := loss_of(blocks)) < best_loss:
                best, best_loss = blocks, loss
    else:
        for block in sorted(candidates):
            if (loss := loss_of(best | {block})) < best_loss:
                best, best_loss = best | {block}, loss
    model.load_state_dict(_mixed(federated, own, best))
    return best


def _mixed(
    federated: Mapping[str, torch.Tensor],
    own: Mapping[str, torch.Tensor],
    blocks: frozenset[str],
) -> dict[str, torch.Tensor]:
    return {
        key: own[key] if block_of(key) in blocks else value
        for key, value in federated.items()
    }


def describe_own(blocks: frozenset[str]) -> str:
    """The blocks a personalized model took from the client itself, for
    reports (``normalization``, always the client's own, is left out)."""
    return format_blocks(blocks - {NORMALIZATION})
