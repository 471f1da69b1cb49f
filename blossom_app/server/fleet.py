"""The fleet: what each node says about itself, finding the nodes, checking them,
and following them as they come and go.

A node answers the ``query.profile`` message with a ``NodeProfile``
(``common.profile``, the record both sides read).
"""

import time
from collections import Counter
from logging import INFO, WARNING

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore import log

from blossom_app import __version__
from blossom_app.common.modality_mix import ModalityMix
from blossom_app.common.profile import NodeProfile, describe, setup_problem
from blossom_app.common.protocol import PROFILE
from blossom_app.common.training import TrainingSettings
from blossom_app.errors import ConfigError
from blossom_app.server.message_flow import stream


class DiscoveryError(RuntimeError):
    """Nodes could not be profiled; the message says which and why."""


def _ask(
    grid: Grid, node_ids: list[int], timeout: float
) -> tuple[list[NodeProfile], list[str], dict[str, list[int]]]:
    """Profiles of the nodes that answered, why each other one did not, and
    each setup problem reported with the nodes that reported it."""
    queries = [
        Message(RecordDict(), dst_node_id=node_id, message_type=PROFILE)
        for node_id in node_ids
    ]
    replies = list(stream(grid, queries, timeout))
    failures = [
        f"node {reply.metadata.src_node_id}: {reply.error.reason}"
        for reply in replies
        if reply.has_error()
    ]
    missing = sorted(set(node_ids) - {r.metadata.src_node_id for r in replies})
    failures += [f"node {node_id}: no reply in {timeout} s" for node_id in missing]
    profiles, problems = [], {}
    for reply in (reply for reply in replies if not reply.has_error()):
        if (problem := setup_problem(reply)) is None:
            profiles.append(NodeProfile.from_reply(reply))
        else:
            problems.setdefault(problem, []).append(reply.metadata.src_node_id)
    return profiles, failures, problems


def _profile(grid: Grid, node_ids: list[int], timeout: float) -> list[NodeProfile]:
    profiles, failures, problems = _ask(grid, node_ids, timeout)
    if problems:
        raise SetupProblem(problems, len(node_ids))
    if failures:
        raise DiscoveryError("Profiling failed on " + "; ".join(failures))
    return profiles


class SetupProblem(DiscoveryError):
    """Nodes cannot set up for this run config: each distinct problem, said
    once, with how many nodes report it (the nodes' own messages name the
    setting and the fix); past ``SHOWN_PROBLEMS``, how many more there are."""

    SHOWN_PROBLEMS = 3

    def __init__(self, problems: dict[str, list[int]], asked: int) -> None:
        shown = list(problems.items())[: self.SHOWN_PROBLEMS]
        said = [
            f"{'All' if len(nodes) == asked else len(nodes)} of the {asked} nodes "
            f"report: {problem}"
            for problem, nodes in shown
        ]
        hidden = len(problems) - len(shown)
        if hidden:
            nodes = sum(len(nodes) for nodes in list(problems.values())[len(shown) :])
            said.append(
                f"… and {hidden} other problem(s) from {nodes} more node(s), "
                "most likely of the same kind: fix the above and run again."
            )
        super().__init__("\n".join(said))
        self.problems = problems


def compatible(a: str, b: str) -> bool:
    """Whether app versions ``a`` and ``b`` work together: the same major and
    minor version (``0.1.0`` and ``0.1.3`` do, ``0.2.0`` does not), as the
    messages and parameter names may change with the minor version."""
    return a.split(".")[:2] == b.split(".")[:2]


def leave_out_incompatible(
    profiles: list[NodeProfile],
) -> tuple[list[NodeProfile], dict[int, str]]:
    """The profiles of the nodes that run an app version ``compatible`` with
    the server's, and why each other node is left out (logged as a WARNING)."""
    kept, left_out = [], {}
    for profile in profiles:
        if compatible(profile.version, __version__):
            kept.append(profile)
            continue
        left_out[profile.node_id] = (
            f"node {profile.node_id} runs blossom-app {profile.version}, the "
            f"server {__version__}"
        )
        log(
            WARNING,
            "Node %d runs blossom-app %s, this server %s: left out of this run. "
            "Install the same app version on the node (same major and minor).",
            profile.node_id,
            profile.version,
            __version__,
        )
    return kept, left_out


def discover_nodes(
    grid: Grid, min_nodes: int, timeout: float
) -> dict[int, NodeProfile]:
    """Profile nodes as they connect until ``min_nodes`` are known.

    Each node is asked once, as soon as it is connected, so a misconfigured
    node (a node-config modality the dataset lacks, a mix that does not match
    the federation) stops the run at once with its own error message. A node
    running an incompatible app version is left out and not counted.
    """
    deadline = time.monotonic() + timeout
    profiles: dict[int, NodeProfile] = {}
    left_out: dict[int, str] = {}
    while True:
        new = sorted(set(grid.get_node_ids()) - set(profiles) - set(left_out))
        if new:
            kept, refused = leave_out_incompatible(_profile(grid, new, timeout))
            profiles.update((p.node_id, p) for p in kept)
            left_out.update(refused)
        if len(profiles) >= min_nodes:
            return profiles
        if time.monotonic() > deadline:
            why = (
                f" Left out: {'; '.join(left_out.values())}; install blossom-app "
                f"{__version__} on those nodes."
                if left_out
                else ""
            )
            raise DiscoveryError(
                f"Only {len(profiles)} of {min_nodes} nodes connected within "
                f"{timeout:.0f} s.{why} Start more SuperNodes or change modality-mix."
            )
        log(INFO, "Waiting for nodes: %d of %d connected", len(profiles), min_nodes)
        time.sleep(1.0)


def check_fleet(profiles: dict[int, NodeProfile], mix: ModalityMix) -> None:
    """Fail unless the nodes hold the modality sets ``mix`` counts.

    In simulation the mix assigns the sets, so they always match; deployed
    nodes declare theirs in node config, and results filed under a mix the
    fleet does not have would mislead.
    """
    fleet = Counter(profile.modalities for profile in profiles.values())
    wanted = Counter(dict(mix.groups))
    if fleet != wanted:
        have = ",".join(f"{'+'.join(m)}={n}" for m, n in sorted(fleet.items()))
        raise ConfigError(
            "modality-mix",
            mix.text,
            f"the modality sets the nodes declare: '{have}'",
            f"Run with --run-config \"modality-mix='{have}'\".",
        )


#: Fewer optimizer steps per round than this and a client learns little in
#: the rounds a run has: the run says so when it starts. Reported in issue 26:
#: 4 clients of about 15 windows, 3 steps per round over 60 rounds, ended at
#: 0.46 accuracy; 20 steps per round over 30 rounds reached 0.92.
FEW_STEPS = 10
SUGGESTED_MIN_STEPS = 20


def warn_if_few_steps(
    profiles: dict[int, NodeProfile], training: TrainingSettings
) -> None:
    """Log a WARNING naming the client with the fewest optimizer steps per
    round if any makes fewer than ``FEW_STEPS``, and what to set."""
    few = sorted(
        (training.steps_per_round(p.train_examples), p.partition_id, p.train_examples)
        for p in profiles.values()
        if training.steps_per_round(p.train_examples) < FEW_STEPS
    )
    if not few:
        return
    steps, partition, windows = few[0]
    log(
        WARNING,
        "%d of %d clients make fewer than %d optimizer steps per round. The "
        "smallest, partition %d, has %d training windows: %d local epoch(s) of "
        "batch %d (min-local-steps %d) make %d step(s) per round, %d in %d rounds, "
        "too few to learn "
        'from. Set a minimum (--run-config "min-local-steps=%d") or more '
        "local-epochs.",
        len(few),
        len(profiles),
        FEW_STEPS,
        partition,
        windows,
        training.epochs,
        training.batch_size,
        training.min_steps,
        steps,
        steps * training.num_rounds,
        training.num_rounds,
        SUGGESTED_MIN_STEPS,
    )


class Fleet:
    """The nodes of a federation as rounds go by.

    Starts from the discovered ``profiles`` (checked against ``mix``). Each
    round, ``present`` looks up the connected nodes: a node that connected
    since (a new device, or a restarted one, which gets a new node id unless
    nodes authenticate) is profiled and joins when its modality set is one
    the mix has and its app version is ``compatible``; a profiled node that is
    gone is reported, so the round records it as missing instead of waiting
    for it.
    """

    def __init__(
        self, profiles: dict[int, NodeProfile], mix: ModalityMix, timeout: float
    ) -> None:
        self.profiles = profiles
        self._sets = {modalities for modalities, _ in mix.groups}
        self._timeout = timeout
        self._refused: set[int] = set()

    def present(self, grid: Grid) -> tuple[list[int], list[int]]:
        """``(connected, gone)``: profiled node ids connected now, and not."""
        connected = set(grid.get_node_ids())
        new = sorted(connected - set(self.profiles) - self._refused)
        if new:
            self._admit(grid, new)
        known = set(self.profiles)
        return sorted(known & connected), sorted(known - connected)

    def _admit(self, grid: Grid, node_ids: list[int]) -> None:
        profiles, failures, problems = _ask(grid, node_ids, self._timeout)
        for failure in failures:
            log(
                WARNING,
                "A new node could not be profiled (next round: again): %s",
                failure,
            )
        for problem, nodes in problems.items():
            log(WARNING, "New node(s) %s left out of this run: %s", nodes, problem)
            self._refused.update(nodes)
        profiles, left_out = leave_out_incompatible(profiles)
        self._refused.update(left_out)
        for profile in profiles:
            if profile.modalities in self._sets:
                self.profiles[profile.node_id] = profile
                log(INFO, "Node joined: %s", describe([profile])[0])
            else:
                self._refused.add(profile.node_id)
                log(
                    WARNING,
                    "Node %d holds %s, a modality set the modality-mix does not "
                    "have: left out of this run",
                    profile.node_id,
                    profile.label,
                )
