"""Blocks and aggregation policies.

A block is a named group of parameters: ``encoder:<modality>``, ``fusion`` or
``head``, and ``normalization`` (the client's input statistics, buffers of no
gradient). This module is the only place that maps a parameter key to its
block. A ``Policy`` says which blocks are private (never leave the client);
every other block is shared (averaged on the server). ``normalization`` is
private under every policy. The policies themselves are declared in
``policies.py``.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from flwr.app import ArrayRecord

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
