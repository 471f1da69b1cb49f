"""How a simulation scales with the number of simulated clients on this machine.

Runs 10, 50 and 100 SuperNodes (``--quick``: 10 and 20) for 3 rounds
(``--quick``: 2), IID split of ``watch``, export off, otherwise the app's
defaults, with the modality mix scaled to N: ``acc=<30 %>,gyro=<30 %>,
acc+gyro=<rest>``. Ray runs as many ClientApp processes as there are cores
(one CPU per client), whatever N: the simulated clients take turns on them.

Per N: wall seconds of the whole ``blossom run``; the train phase's seconds per
round (``timing.csv`` ``train_seconds``: the server's round trip, which also
covers the nodes' evaluation of the previous round), averaged over rounds 2 on
(round 1 includes the actors' warm-up); that divided by N (seconds per
client-round); and the peak RSS/USS of a ClientApp process and of the ServerApp
process (``harness.sample_tree``). Round time "grows no worse than linearly" when
``round(N) / round(N0) <= N / N0 x 1.1`` for the smallest N0. The dataset is
fixed, so the total training work per round hardly changes with N: growth is
per-client overhead (messages, model builds, data set-up).

Usage: python bench/scale.py [--quick] [--out bench/results/scale.json]
"""

from pathlib import Path

import harness

from blossom_app.reporting.layout import TIMING

NAME = "scale"
TITLE = "Scale (`bench/scale.py`)"
SLACK = 1.1


def mix_for(clients: int) -> str:
    """``acc=30 %,gyro=30 %,acc+gyro=the rest`` as counts adding up to ``clients``."""
    single = clients * 3 // 10
    return f"acc={single},gyro={single},acc+gyro={clients - 2 * single}"


def measure(clients: int, rounds: int, root: Path) -> dict:
    """One run of ``clients`` SuperNodes: times per round and memory peaks."""
    overrides = {
        "num-server-rounds": rounds,
        "export-onnx": False,
        "partitioner": "iid",
        "modality-mix": mix_for(clients),
    }
    run = harness.simulate(overrides, clients, root / f"n{clients}", sample_memory=True)
    first = 2 if rounds > 1 else 1  # round 1 includes the actors' warm-up
    timing = [
        float(row["train_seconds"])
        for row in run.rows(TIMING)
        if int(row["round"]) >= first and row.get("train_seconds")
    ]
    round_seconds = harness.mean(timing)
    return {
        "clients": clients,
        "mix": overrides["modality-mix"],
        "rounds": rounds,
        "wall_seconds": run.wall_seconds,
        "train_seconds_per_round": round_seconds,
        "seconds_per_client_round": round_seconds / clients,
        "run": run.to_json(),
    }


def main() -> None:
    args = harness.parser(NAME, __doc__).parse_args()
    sizes, rounds = ((10, 20), 2) if args.quick else ((10, 50, 100), 3)
    root = harness.workdir(NAME)
    host = harness.machine()
    results = [measure(clients, rounds, root) for clients in sizes]

    base = results[0]
    rows = []
    for r in results:
        growth = r["train_seconds_per_round"] / base["train_seconds_per_round"]
        r["growth"] = growth
        r["at_most_linear"] = growth <= r["clients"] / base["clients"] * SLACK
        memory = r["run"]["memory"]
        rows.append(
            [
                r["clients"],
                r["mix"],
                f"{r['wall_seconds']:.1f}",
                f"{r['train_seconds_per_round']:.2f}",
                f"{r['seconds_per_client_round']:.3f}",
                f"{growth:.2f}x (linear: {r['clients'] / base['clients']:.0f}x)",
                "yes" if r["at_most_linear"] else "no",
                *(
                    f"{memory[kind]['rss'] / harness.GB:.2f} / "
                    f"{memory[kind]['uss'] / harness.GB:.2f}"
                    if kind in memory
                    else "-"
                    for kind in ("client", "server")
                ),
            ]
        )
    table = harness.markdown_table(
        [
            "clients",
            "mix",
            "wall s",
            "train s/round" + (" (rounds 2+)" if rounds > 1 else ""),
            "s per client-round",
            f"round time vs {base['clients']}",
            f"<= linear x {SLACK}",
            "ClientApp process peak RSS / USS GB",
            "ServerApp process peak RSS / USS GB",
        ],
        rows,
    )
    intro = (
        f"Simulated clients on this machine: IID split of watch, {rounds} rounds, "
        "export off, mix acc/gyro/acc+gyro = 30/30/40 %, app defaults otherwise. "
        "Ray runs one ClientApp process per core; the clients take turns on them. "
        "Memory: peaks over processes and 0.5 s samples (GB = 10^9 B)."
    )
    data = {"results": results}
    out = harness.report(args, TITLE, intro, table, host, data)
    parts = [
        f"N={r['clients']} {r['train_seconds_per_round']:.2f} s/round "
        f"({r['seconds_per_client_round']:.3f} s/client-round)"
        for r in results
    ]
    linear = all(r["at_most_linear"] for r in results)
    print(
        "scale: "
        + ", ".join(parts)
        + f"; round time at most linear in N: {'yes' if linear else 'NO'}; {out}"
    )


if __name__ == "__main__":
    main()
