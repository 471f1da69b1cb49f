"""Aggregation policies, each declared once, in ``REGISTRY``.

An entry says which blocks the policy keeps private, how ``blossom info``
describes it, where ``blossom compare`` puts it, whether it is a baseline, and
whether the paper's grid and ``blossom sweep``'s default grid run it. Every
consumer reads the registry: ``make_policy`` (the run config's
``aggregation``), ``blossom info``, the sweep's default policies, the paper's
grid presets (``presets.py``), the comparison's row order and gains, and the
plots' colours. A new policy is one entry (and its tests).

A policy's results are named after it; under adaptive personalization
(``personalization = "adaptive"``) its name gets ``ADAPTIVE_SUFFIX``
(``full-model+adaptive``): the same private blocks, the shared ones chosen per
client.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from blossom_app.common.blocks import (
    FUSION,
    HEAD,
    NORMALIZATION,
    Policy,
    held_blocks,
)
from blossom_app.errors import ConfigError


class Blocks(Enum):
    """A policy's private blocks where they are not one fixed set."""

    #: Every block the client holds: nothing is sent, nothing averaged.
    ALL = "all"
    #: The run config's ``private-blocks``, a subset of the task's blocks.
    CHOSEN = "chosen"


class Baseline(Enum):
    """What a baseline policy is the baseline of."""

    #: Every policy's relative gain is measured over it (same mix and variant).
    GAINS = "gains"
    #: Training alone: the row every federated policy must beat (a second gain).
    NO_FEDERATION = "no-federation"
    #: All data pooled in one place (``tools/centralized.py``): no federation.
    POOLED = "pooled"


#: Comparison rank of a policy declared without one (and of any other name,
#: such as ``<policy>+adaptive``): after the ranked ones, by name.
UNRANKED = 3


@dataclass(frozen=True)
class PolicySpec:
    """One policy.

    ``private``: its private blocks, a fixed set or a ``Blocks`` rule; ``None``
    for a baseline that is no aggregation policy (``centralized``: its run
    config's ``aggregation`` does not matter). ``normalization`` is private
    under every policy.
    ``about``: how ``blossom info`` describes it (default: its fixed blocks).
    ``rank``: comparison rows and plots put lower ranks first, equal ranks by
    name.
    ``baseline``: what it is the baseline of, if anything (one policy each).
    ``paper``: one of the paper's grid (its presets
    ``<partitioner>-<mix>-<policy>``, ``presets.py``).
    ``swept``: in ``blossom sweep``'s default grid.
    """

    name: str
    private: frozenset[str] | Blocks | None
    about: str = ""
    rank: int = UNRANKED
    baseline: Baseline | None = None
    paper: bool = False
    swept: bool = False

    @property
    def aggregation(self) -> bool:
        """Whether it is a value of the run config's ``aggregation``."""
        return self.private is not None

    def describe(self) -> str:
        """Its private blocks as ``blossom info`` lists them."""
        if self.about or not isinstance(self.private, frozenset):
            return self.about
        return ", ".join(sorted(self.private)) or "none"


#: Policy names code refers to by name: the pooled-data baseline is trained by
#: its own program (``tools/centralized.py``) and ``custom`` takes a list.
CENTRALIZED = "centralized"
CUSTOM = "custom"

#: Every policy, in the order ``blossom info`` lists them and sweeps run them.
REGISTRY: dict[str, PolicySpec] = {
    spec.name: spec
    for spec in (
        PolicySpec(
            "full-model",
            frozenset(),
            rank=0,
            baseline=Baseline.GAINS,
            paper=True,
            swept=True,
        ),
        PolicySpec("private-head", frozenset({HEAD}), paper=True, swept=True),
        PolicySpec(
            "private-head-fusion", frozenset({HEAD, FUSION}), paper=True, swept=True
        ),
        # every block private: nothing is sent, nothing averaged; the
        # no-federation baseline, run by the same app, data, model and schedule
        PolicySpec(
            "local",
            Blocks.ALL,
            "all (nothing is sent: the no-federation baseline)",
            rank=1,
            baseline=Baseline.NO_FEDERATION,
            swept=True,
        ),
        PolicySpec(CUSTOM, Blocks.CHOSEN, "the run config's 'private-blocks'"),
        # not a federated policy: the pooled-data baseline, named like one so
        # that its results sit beside the policies'
        PolicySpec(
            CENTRALIZED,
            None,
            "not a policy: the pooled-data baseline "
            "(`blossom centralized`, or a policy of `blossom sweep`)",
            rank=2,
            baseline=Baseline.POOLED,
        ),
    )
}

#: ``personalization`` value under which a policy's name gets ``ADAPTIVE_SUFFIX``.
ADAPTIVE = "adaptive"
#: ``personalization`` value of the policy's blocks as they are, for every client.
FIXED = "fixed"
#: Suffix of a policy's name under adaptive personalization
#: (``full-model+adaptive``): the same private blocks, chosen per client.
ADAPTIVE_SUFFIX = f"+{ADAPTIVE}"


def policy_specs() -> list[PolicySpec]:
    """Every registered policy, in declaration order."""
    return list(REGISTRY.values())


def aggregations() -> list[str]:
    """The values of the run config's ``aggregation``."""
    return [spec.name for spec in REGISTRY.values() if spec.aggregation]


def baseline(kind: Baseline) -> str:
    """The name of the policy that is the ``kind`` baseline."""
    [name] = [spec.name for spec in REGISTRY.values() if spec.baseline is kind]
    return name


def is_fixed_federated(name: str) -> bool:
    """Whether ``name`` is a federated policy with fixed private blocks: a
    registered one other than ``local`` and ``centralized`` (a policy under
    adaptive personalization chooses them per client)."""
    spec = REGISTRY.get(name)
    return spec is not None and spec.baseline not in (
        Baseline.NO_FEDERATION,
        Baseline.POOLED,
    )


def paper_policies() -> list[str]:
    """The policies of the paper's grid."""
    return [spec.name for spec in REGISTRY.values() if spec.paper]


def swept_policies() -> list[str]:
    """The policies of ``blossom sweep``'s default grid."""
    return [spec.name for spec in REGISTRY.values() if spec.swept]


def policy_order(name: str) -> tuple[int, str]:
    """Sort key of a policy's results: by rank (``full-model``, ``local``,
    ``centralized`` first), then by name; any unregistered name (such as
    ``<policy>+adaptive``) is unranked."""
    spec = REGISTRY.get(name)
    return (spec.rank if spec else UNRANKED), name


def adaptive_name(name: str) -> str:
    """``name`` under adaptive personalization."""
    return name + ADAPTIVE_SUFFIX


def policy_keys(policy: str) -> dict[str, str]:
    """The run-config keys that run ``policy`` (a results name): its
    ``aggregation``, and ``personalization``: ``adaptive`` when named
    ``<aggregation>+adaptive``, else ``fixed`` (named, whatever the app's
    default, so that the name alone says what ran); none for a policy that is
    no aggregation (``centralized`` sends nothing: the run config's policy
    does not matter)."""
    spec = REGISTRY.get(policy)
    if spec is not None and not spec.aggregation:
        return {}
    if policy.endswith(ADAPTIVE_SUFFIX):
        aggregation = policy.removesuffix(ADAPTIVE_SUFFIX)
        return {"aggregation": aggregation, "personalization": ADAPTIVE}
    return {"aggregation": policy, "personalization": FIXED}


def fixed_policies() -> dict[str, frozenset[str]]:
    """The policies of a fixed block set: name -> private blocks."""
    return {
        spec.name: spec.private
        for spec in REGISTRY.values()
        if isinstance(spec.private, frozenset)
    }


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
        return Policy(adaptive_name(policy.name), policy.private)
    return policy


def _policy(name: str, private_blocks: str, modalities: Iterable[str]) -> Policy:
    spec = REGISTRY.get(name)
    if spec is None or spec.private is None:
        raise ConfigError("aggregation", name, ", ".join(aggregations()))
    if spec.private is Blocks.CHOSEN:
        return Policy(name, _chosen(private_blocks, modalities))
    if private_blocks:
        chosen = [s.name for s in REGISTRY.values() if s.private is Blocks.CHOSEN]
        raise ConfigError(
            "private-blocks",
            private_blocks,
            f"'' unless aggregation={' or '.join(repr(c) for c in chosen)}",
            f"Policy '{name}' fixes its private blocks.",
        )
    if spec.private is Blocks.ALL:
        return Policy(name, held_blocks(modalities))
    return Policy(name, spec.private)


def _chosen(private_blocks: str, modalities: Iterable[str]) -> frozenset[str]:
    """``private-blocks``: a comma-separated subset of the task's blocks."""
    known = sorted(held_blocks(modalities) - {NORMALIZATION})
    chosen = frozenset(b.strip() for b in private_blocks.split(",") if b.strip())
    if not chosen or not chosen <= set(known):
        raise ConfigError(
            "private-blocks",
            private_blocks,
            "a comma-separated subset of " + ", ".join(known),
        )
    return chosen
