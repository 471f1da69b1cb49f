"""Blocks and aggregation policies.

A block is a named group of parameters: ``encoder:<modality>``, ``fusion`` or
``head``, and ``normalization`` (the client's input statistics, buffers of no
gradient). This module is the only place that maps a parameter key to its
block. A policy says which blocks are private (never leave the client); every
other block is shared (averaged on the server). ``normalization`` is private
under every policy.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from flwr.app import ArrayRecord

from blossom_app.errors import ConfigError

HEAD = "head"
FUSION = "fusion"
NORMALIZATION = "normalization"
ENCODER_PREFIX = "encoder:"

_KEY_PREFIXES = (
    ("encoders.", ENCODER_PREFIX),
    ("fusion.", FUSION),
    ("head.", HEAD),
    ("normalizers.", NORMALIZATION),
)


def encoder_block(modality: str) -> str:
    """Block name of a modality's encoder, e.g. ``encoder:acc``."""
    return f"{ENCODER_PREFIX}{modality}"


def block_of(key: str) -> str:
    """Map a parameter key to its block.

    ``encoders.acc.conv.0.weight`` -> ``encoder:acc``; ``fusion.score.weight`` ->
    ``fusion``; ``head.0.bias`` -> ``head``; ``normalizers.acc.mean`` ->
    ``normalization``. Prefixes match with their trailing
    dot, so ``encoders.acc.`` never matches ``encoders.acc_watch.``.
    """
    for prefix, block in _KEY_PREFIXES:
        if key.startswith(prefix):
            if block != ENCODER_PREFIX:
                return block
            modality, dot, rest = key[len(prefix) :].partition(".")
            if modality and dot and rest:
                return encoder_block(modality)
    raise ValueError(f"Parameter key {key!r} belongs to no block")


def held_blocks(modalities: Iterable[str]) -> frozenset[str]:
    """Blocks a client holding ``modalities`` has: its encoders, fusion, head
    and its input normalization."""
    return frozenset(
        {NORMALIZATION, FUSION, HEAD, *(encoder_block(m) for m in modalities)}
    )


def format_modalities(modalities: Iterable[str]) -> str:
    """A modality set as one string: sorted, ``+``-joined (``acc+gyro``)."""
    return "+".join(sorted(modalities))


def format_blocks(blocks: Iterable[str]) -> str:
    """A block set as one string: sorted, ``+``-joined (``fusion+head``); ``-``
    when empty."""
    return "+".join(sorted(blocks)) or "-"


@dataclass(frozen=True)
class Policy:
    """Which blocks stay on the client (``normalization`` always does)."""

    name: str
    private: frozenset[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "private", self.private | {NORMALIZATION})

    def is_private_key(self, key: str) -> bool:
        return block_of(key) in self.private

    def shared_keys(self, keys: Iterable[str]) -> list[str]:
        return [key for key in keys if not self.is_private_key(key)]

    def private_keys(self, keys: Iterable[str]) -> list[str]:
        return [key for key in keys if self.is_private_key(key)]


POLICIES: dict[str, frozenset[str]] = {
    "full-model": frozenset(),
    "private-head": frozenset({HEAD}),
    "private-head-fusion": frozenset({HEAD, FUSION}),
}
CUSTOM = "custom"
#: Every block private: nothing is sent, nothing averaged. The no-federation
#: baseline, run by the same app, data, model and schedule.
LOCAL = "local"
#: Not a federated policy: the pooled-data baseline (``centralized.py``),
#: named like one so that its results sit beside the policies'.
CENTRALIZED = "centralized"


#: Suffix of a policy's name under adaptive personalization
#: (``full-model+adaptive``): the same private blocks, chosen per client.
ADAPTIVE_SUFFIX = "+adaptive"


def make_policy(
    name: str, private_blocks: str, modalities: Iterable[str], adaptive: bool = False
) -> Policy:
    """Build a policy from the run config's ``aggregation`` and ``private-blocks``
    (named ``<aggregation>+adaptive`` under adaptive personalization).

    ``custom`` takes a comma-separated list of private blocks, e.g.
    ``"head,encoder:audio"``; each must be a block of the task (``modalities``);
    ``local`` makes every block private.
    """
    policy = _policy(name, private_blocks, modalities)
    if adaptive:
        return Policy(policy.name + ADAPTIVE_SUFFIX, policy.private)
    return policy


def _policy(name: str, private_blocks: str, modalities: Iterable[str]) -> Policy:
    if name in POLICIES or name == LOCAL:
        if private_blocks:
            raise ConfigError(
                "private-blocks",
                private_blocks,
                "'' unless aggregation='custom'",
                f"Policy '{name}' fixes its private blocks.",
            )
        private = held_blocks(modalities) if name == LOCAL else POLICIES[name]
        return Policy(name, private)
    if name != CUSTOM:
        raise ConfigError("aggregation", name, ", ".join([*POLICIES, LOCAL, CUSTOM]))
    known = sorted(held_blocks(modalities) - {NORMALIZATION})
    chosen = frozenset(b.strip() for b in private_blocks.split(",") if b.strip())
    if not chosen or not chosen <= set(known):
        raise ConfigError(
            "private-blocks",
            private_blocks,
            "a comma-separated subset of " + ", ".join(known),
        )
    return Policy(CUSTOM, chosen)


class PrivateBlockLeak(RuntimeError):
    """Outgoing arrays carry a private block: the client refuses to send them."""


def guard_outgoing(record: ArrayRecord, policy: Policy) -> ArrayRecord:
    """Return ``record`` unchanged, or raise if it carries any private key."""
    leaked = policy.private_keys(record.keys())
    if leaked:
        raise PrivateBlockLeak(
            f"Refusing to send private keys under policy '{policy.name}': {leaked}"
        )
    return record
