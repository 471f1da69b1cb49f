"""Adaptive personalization: each client chooses, block by block, whether its
personalized model takes the federation's version of a block or its own.

A client's *own* version of a block is the one it trained last round (kept in
its private state, never sent). Under ``personalization = "adaptive"`` the
client holds out a validation split carved from its training examples (cut
from them in time, as the test split is, but at their start: no window shares
samples with one it trains on, and those it trains on stay next to the test
ones; ``data/splits.py``) and, each time it builds its personalized model,
tries every combination of own/federation versions of its shared blocks.

The federation's model is the default: a combination of own blocks replaces
it only where the validation split gives evidence that it is better. Per
validation example, the gain is how much lower the combination's loss is than
the federation model's; the combination kept is the one with the largest mean
gain less ``EVIDENCE`` standard errors, and none when that is not above zero
(a two-standard-error rule). Without it, the search over 2 ** blocks noisy
losses on a few dozen examples picks own blocks by chance, and a client that
trains its own chain drifts away from the federation for good.

Choices may differ between clients and change from round to round; the
evaluation replies report them (``own_blocks`` in ``client_metrics.csv``).
The client then trains the model it chose. For a block it took from the
federation it sends the trained block, as under any policy; for a block it
kept as its own it sends the federation's version plus this round's change to
its own (``federation_update``): the federation averages every client's
training, never a client's own version, which stays on the client and goes
on from where it was. No block the policy makes private is sent.
"""

from collections.abc import Callable, Mapping
from itertools import combinations

import numpy as np
import torch
from flwr.app import ArrayRecord

from blossom_app.common.blocks import NORMALIZATION, block_of, format_blocks
from blossom_app.common.model import MultimodalModel

#: Past this many candidate blocks the search is greedy, block by block,
#: instead of over every combination (2 ** blocks evaluations).
EXHAUSTIVE_LIMIT = 6

#: Standard errors of the mean validation gain that own blocks must clear.
EVIDENCE = 2.0


def choose_blocks(
    model: MultimodalModel,
    own: Mapping[str, torch.Tensor],
    candidates: list[str],
    validation_losses: Callable[[MultimodalModel], np.ndarray],
) -> frozenset[str]:
    """Load into ``model`` (which holds the federation's blocks) the own
    versions (``own``) of those ``candidates`` blocks whose per-example
    ``validation_losses`` show the clearest gain over the federation's; return
    the blocks taken from ``own`` (none without evidence of a gain)."""
    federated = {key: value.clone() for key, value in model.state_dict().items()}

    def losses_of(blocks: frozenset[str]) -> np.ndarray:
        model.load_state_dict(_mixed(federated, own, blocks))
        return np.asarray(validation_losses(model), dtype=np.float64)

    baseline = losses_of(frozenset())

    def evidence(blocks: frozenset[str]) -> float:
        gains = baseline - losses_of(blocks)
        if len(gains) < 2:  # no spread to judge by: no evidence
            return 0.0
        error = gains.std(ddof=1) / np.sqrt(len(gains))
        return float(gains.mean() - EVIDENCE * error)

    best, best_evidence = frozenset(), 0.0
    if len(candidates) <= EXHAUSTIVE_LIMIT:
        trials = (
            frozenset(blocks)
            for size in range(1, len(candidates) + 1)
            for blocks in combinations(sorted(candidates), size)
        )
        for blocks in trials:
            if (score := evidence(blocks)) > best_evidence:
                best, best_evidence = blocks, score
    else:
        for block in sorted(candidates):
            if (score := evidence(best | {block})) > best_evidence:
                best, best_evidence = best | {block}, score
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


def own_offsets(
    model: MultimodalModel, received: ArrayRecord
) -> dict[str, torch.Tensor]:
    """For each parameter of ``model`` that starts this round's training from
    the client's own version of a shared block: how far that start lies from
    the federation's version (``received``), on the model's device."""
    state = model.state_dict()
    return {
        key: state[key] - torch.from_numpy(received[key].numpy()).to(state[key])
        for key in received
        if block_of(key) in model.own_blocks
    }


def federation_update(
    trained: Mapping[str, torch.Tensor], offsets: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``trained`` (a state dict), where each parameter that started from the
    client's own version is moved by its offset (``own_offsets``) onto the
    federation's: the federation's version plus its change in training.
    Averaging the own versions themselves would pull the federation towards
    versions it never had; averaging their changes keeps every client's
    training in the federation's update."""
    return {
        key: value - offsets[key] if key in offsets else value
        for key, value in trained.items()
    }
