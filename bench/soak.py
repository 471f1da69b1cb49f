"""One SuperLink serving a fleet on this machine: a loopback soak.

A SuperLink with TLS, node authentication and ``--database`` (the units of
``edge/systemd``, as ``tests/federation.py``'s ``SecuredFederation`` runs them)
serves ``NODES`` SuperNodes (``--nodes``; ``--quick``: 6), each its own process
with its own key, ``num-threads`` 1; ``LATE`` (``--late``) more join once every
first node has trained round 1. A run of ``ROUNDS`` rounds of 1 local epoch on
``watch`` (IID, export off), mix acc / gyro / acc+gyro = 30/30/40 %. Reports:
the run's wall seconds; the train phase's seconds per round (``timing.csv``:
the SuperLink's round trip for every node); from which round the late nodes
trained; the replies that never came (``rejections.csv``; the server waits
``ROUND_TIMEOUT`` for them, then goes on without them); and the peak RSS/USS
of one process of each kind (SuperLink, ServerApp, SuperNode, ClientApp:
``harness.sample_tree``), from which the docs size a server for N devices.

Usage: python bench/soak.py [--quick] [--nodes 20] [--late 2] [--out FILE]
"""

import contextlib
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import harness

sys.path.insert(0, str(harness.APP / "tests"))  # the secured federation the tests run
from federation import BackgroundRun, SecuredFederation, trained_rounds  # noqa: E402

from blossom_app.reporting.csv_files import read_rows  # noqa: E402
from blossom_app.reporting.layout import REJECTIONS, TIMING  # noqa: E402

NAME = "soak"
TITLE = "Soak (`bench/soak.py`)"
NODES, LATE, ROUNDS = 20, 2, 3
# how long the server waits for a phase's replies: a reply the SuperLink loses
# costs its round this long
ROUND_TIMEOUT = 300.0
SETS = ("acc", "gyro", "acc+gyro")


def layout(nodes: int, late: int) -> tuple[dict[str, str], dict[str, str], str]:
    """The extra and late nodes beyond SecuredFederation's acc and gyro nodes
    (modalities 30/30/40 % in all), and the mix of the first ``nodes``."""
    single = nodes * 3 // 10
    counts = {"acc": single, "gyro": single, "acc+gyro": nodes - 2 * single}
    wanted = [s for s in SETS for _ in range(counts[s])]
    wanted.remove("acc")  # SecuredFederation's node-acc
    wanted.remove("gyro")  # and node-gyro
    extra = {f"node-{i + 2}": mods for i, mods in enumerate(wanted)}
    joining = {f"late-{i}": SETS[i % len(SETS)] for i in range(late)}
    mix = ",".join(f"{s}={counts[s]}" for s in SETS)
    return extra, joining, mix


def main() -> None:
    parser = harness.parser(NAME, __doc__)
    parser.add_argument("--nodes", type=int, default=NODES, help="SuperNodes at start")
    parser.add_argument("--late", type=int, default=LATE, help="SuperNodes joining")
    args = parser.parse_args()
    nodes, late = (6, 1) if args.quick else (args.nodes, args.late)
    extra, joining, mix = layout(nodes, late)
    work = harness.workdir(NAME)
    env, _ = harness.isolated_env(work)
    config = {
        "modality-mix": mix,
        "num-server-rounds": ROUNDS,
        "local-epochs": 1,
        "evaluate-every": ROUNDS,
        "export-onnx": False,
        "round-timeout": ROUND_TIMEOUT,
    }
    host = harness.machine()
    peaks, seen, sampling = {}, {}, threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            harness.sample_tree(os.getpid(), peaks, seen)
            time.sleep(harness.SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    with SecuredFederation(
        env, Path(tempfile.mkdtemp(dir=work)), stranger=False, extra=extra, late=joining
    ) as federation:
        sampler.start()
        run = BackgroundRun(
            harness.APP, config, connection="blossom", env=federation.env, timeout=3600
        )
        first = [n for n in federation.layout if n not in joining]
        deadline = time.monotonic() + 1800
        while not all(trained_rounds(federation.state_dir(n)) >= 1 for n in first):
            if time.monotonic() > deadline:
                raise RuntimeError("the first nodes did not train round 1 in 30 min")
            time.sleep(1)
        for name in joining:
            federation.start_late(name)
        outcome = run.outcome(timeout=3600)
        wall = time.perf_counter() - start
        sampling.set()
        with contextlib.suppress(RuntimeError):
            sampler.join()
        if not outcome.ok:
            raise RuntimeError(outcome.output[-3000:])
        [experiment] = (federation.server / "results").glob("watch/iid/*/*/*")
        partitions = {federation.layout[name][1] for name in joining}

    timing = read_rows(experiment / "run_0" / TIMING)
    rows = read_rows(experiment / "run_0" / "client_metrics.csv")
    late_rounds = sorted(
        {
            int(r["round"])
            for r in rows
            if int(r["partition_id"]) in partitions and r["train_loss"]
        }
    )
    seconds = [float(r["train_seconds"]) for r in timing]
    lost = (
        Counter(
            f"round {r['round']} {r['phase']}: {r['reason']}"
            for r in read_rows(experiment / "run_0" / REJECTIONS)
        )
        if (experiment / "run_0" / REJECTIONS).exists()
        else Counter()
    )
    memory = {kind: peak for kind, peak in peaks.items()}
    table = harness.markdown_table(
        ["what", "value"],
        [
            ["SuperNodes at the start / joining in round 2", f"{nodes} / {late}"],
            ["mix of the first nodes", mix],
            ["wall s (start of the federation to the run's end)", f"{wall:.0f}"],
            *(
                [f"train phase s, round {i + 1}", f"{value:.1f}"]
                for i, value in enumerate(seconds)
            ),
            ["rounds the late nodes trained", ", ".join(map(str, late_rounds))],
            [
                "replies missing (rejections.csv)",
                "; ".join(f"{k} ({n})" for k, n in sorted(lost.items())) or "none",
            ],
            *(
                [
                    f"{kind} process peak RSS / USS GB ({memory[kind].processes} seen)",
                    f"{memory[kind].rss / harness.GB:.2f} / "
                    f"{memory[kind].uss / harness.GB:.2f}",
                ]
                for kind in ("superlink", "serverapp", "supernode", "clientapp")
                if kind in memory
            ),
        ],
    )
    intro = (
        f"One SuperLink (TLS, node authentication, --database; the units of "
        f"edge/systemd) and {nodes} SuperNodes on loopback, each its own process with "
        f"its own key and num-threads 1; {late} more join once every first node has "
        f"trained round 1. watch, IID, {ROUNDS} rounds of 1 local epoch, export off. "
        "Memory: peaks of one process of each kind, 0.5 s samples (GB = 10^9 B); a "
        "device runs one SuperNode and, during a run, one ClientApp."
    )
    data = {
        "wall_seconds": wall,
        "train_seconds": seconds,
        "late_rounds": late_rounds,
        "missing_replies": dict(lost),
        "memory": {kind: vars(peak) for kind, peak in memory.items()},
    }
    out = harness.report(args, TITLE, intro, table, host, data)
    print(
        f"soak: {nodes}+{late} SuperNodes, {wall:.0f} s, train s/round "
        f"{', '.join(f'{s:.1f}' for s in seconds)}; late nodes trained in rounds "
        f"{late_rounds}; {out}"
    )


if __name__ == "__main__":
    main()
