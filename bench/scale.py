"""How a simulation scales with the number of simulated clients on this machine.

Runs 10, 100 and 1,000 SuperNodes (``--quick``: 10 and 100), and 1,000 again with
``fraction-train`` 0.1, for 4 rounds of 1 local epoch on the same data: the
``synthetic`` fixture (``TOTAL_ROWS`` windows written to parquet, IID split,
``test-fraction`` 0.5 so that each of 1,000 clients gets test windows), export
off, otherwise the app's defaults, with the modality mix scaled to N:
``acc=<30 %>,gyro=<30 %>,acc+gyro=<rest>``. The total training work per round is
the same at every N, so what grows with N is overhead. Ray runs as many
ClientApp processes as there are cores (one CPU per client), whatever N: the
simulated clients take turns on them.

Per N: wall seconds of the whole ``blossom run``; the seconds per round
(``timing.csv``: the train phase, the server's round trip, which also covers the
trained nodes' evaluation of the previous round, plus the evaluate phase of the
others with ``fraction-train`` < 1), averaged over the rounds between the first
(which includes the actors' warm-up) and the last (whose evaluate phase also
evaluates every trained client once more, as no next round does it: reported
on its own, as the last round's seconds); the overhead per client-round, the
slope ``(round(N) - round(10)) / (N - 10)`` (target <= ``TARGET_MS`` ms), and
that of the last round; the
ServerApp's own aggregation and checkpoint per round, per client; the peak USS
of a ClientApp process and of the ServerApp process (``harness.sample_tree``)
against their 10-client values (target <= ``TARGET_MEMORY`` x); and the private
state each client keeps on disk (bytes and files per client, ``node-state/``).

Usage: python bench/scale.py [--quick] [--out bench/results/scale.json]
"""

from pathlib import Path

import harness

from blossom_app.benchmarks.synthetic import synthetic_dataset
from blossom_app.reporting.layout import NODE_STATE, TIMING

NAME = "scale"
TITLE = "Scale (`bench/scale.py`)"
TOTAL_ROWS = 20_000
ROUNDS = 4
TARGET_MS = 10.0
TARGET_MEMORY = 1.5


def mix_for(clients: int) -> str:
    """``acc=30 %,gyro=30 %,acc+gyro=the rest`` as counts adding up to ``clients``."""
    single = clients * 3 // 10
    return f"acc={single},gyro={single},acc+gyro={clients - 2 * single}"


def measure(clients: int, fraction: float, data: Path, root: Path) -> dict:
    """One run of ``clients`` SuperNodes: times per round, memory peaks, state."""
    overrides = {
        "dataset": "synthetic",
        "data-source": str(data),
        "test-fraction": 0.5,
        "num-server-rounds": ROUNDS,
        "local-epochs": 1,
        "fraction-train": fraction,
        "export-onnx": False,
        "modality-mix": mix_for(clients),
    }
    workdir = root / f"n{clients}-f{fraction:g}"
    run = harness.simulate(overrides, clients, workdir, sample_memory=True)
    rows = [row for row in run.rows(TIMING) if int(row["round"]) >= 2]
    # a round: its train phase and, with fraction-train < 1, the evaluate
    # phase of the clients that did not train; the last one evaluates all
    rounds = [
        float(r["train_seconds"]) + float(r["evaluate_seconds"] or 0) for r in rows
    ]
    state = [p for p in (run.experiment / NODE_STATE).rglob("*") if p.is_file()]
    server = [
        float(r["aggregate_seconds"]) + float(r["checkpoint_seconds"]) for r in rows
    ]
    return {
        "clients": clients,
        "fraction_train": fraction,
        "mix": overrides["modality-mix"],
        "wall_seconds": run.wall_seconds,
        "round_seconds": harness.mean(rounds[:-1]),
        "last_round_seconds": rounds[-1],
        "server_ms_per_client_round": 1000 * harness.mean(server) / clients,
        "state_bytes_per_client": sum(p.stat().st_size for p in state) / clients,
        "state_files_per_client": len(state) / clients,
        "run": run.to_json(),
    }


def uss(result: dict, kind: str) -> float:
    return result["run"]["memory"][kind]["uss"]


def main() -> None:
    args = harness.parser(NAME, __doc__).parse_args()
    sizes = (10, 100) if args.quick else (10, 100, 1000)
    root = harness.workdir(NAME)
    host = harness.machine()
    data = root / "synthetic.parquet"
    synthetic_dataset(TOTAL_ROWS).to_parquet(str(data))
    runs = [(n, 1.0) for n in sizes] + [(sizes[-1], 0.1)]
    results = [measure(clients, fraction, data, root) for clients, fraction in runs]

    base = results[0]
    rows = []
    for r in results:
        more = r["clients"] - base["clients"]
        extra = r["round_seconds"] - base["round_seconds"]
        last = r["last_round_seconds"] - base["last_round_seconds"]
        r["overhead_ms_per_client_round"] = 1000 * extra / more if more else 0.0
        r["last_round_overhead_ms_per_client"] = 1000 * last / more if more else 0.0
        r["client_uss_vs_base"] = uss(r, "client") / uss(base, "client")
        r["server_uss_vs_base"] = uss(r, "server") / uss(base, "server")
        last_round = f"{r['last_round_seconds']:.2f}"
        if more:
            last_round += f" ({r['last_round_overhead_ms_per_client']:.1f})"
        rows.append(
            [
                r["clients"],
                f"{r['fraction_train']:g}",
                f"{r['wall_seconds']:.0f}",
                f"{r['round_seconds']:.2f}",
                "-" if r is base else f"{r['overhead_ms_per_client_round']:.1f}",
                last_round,
                f"{r['server_ms_per_client_round']:.2f}",
                f"{uss(r, 'client') / harness.GB:.2f} ({r['client_uss_vs_base']:.2f}x)",
                f"{uss(r, 'server') / harness.GB:.2f} ({r['server_uss_vs_base']:.2f}x)",
                f"{r['state_bytes_per_client'] / 1e3:.0f} kB in "
                f"{r['state_files_per_client']:.1f} file(s)",
            ]
        )
    table = harness.markdown_table(
        [
            "clients",
            "fraction-train",
            "wall s",
            f"s per round (rounds 2-{ROUNDS - 1}: train + evaluate)",
            f"overhead ms per client-round (vs {base['clients']}; target <= "
            f"{TARGET_MS:g})",
            "last round s, with every client's final evaluation (overhead ms "
            "per client)",
            "ServerApp aggregation + checkpoint ms per client-round",
            f"ClientApp process peak USS GB (vs {base['clients']}; target <= "
            f"{TARGET_MEMORY:g}x)",
            f"ServerApp process peak USS GB (vs {base['clients']})",
            "private state on disk per client",
        ],
        rows,
    )
    intro = (
        f"Simulated clients on this machine, the same data at every size: the "
        f"synthetic fixture, {TOTAL_ROWS:,} windows, IID, test-fraction 0.5, "
        f"{ROUNDS} rounds of 1 local epoch, export off, mix acc/gyro/acc+gyro = "
        "30/30/40 %, app defaults otherwise. Ray runs one ClientApp process per "
        "core; the clients take turns on them. Overhead: the slope of the round "
        f"time over the clients from {base['clients']}, on the rounds between the "
        "first (Ray's warm-up) and the last (whose evaluate phase evaluates "
        "every client once more, once per run: its own column). Memory: peak "
        f"USS over processes and {harness.SAMPLE_SECONDS:g} s samples "
        "(GB = 10^9 B)."
    )
    data_out = {"results": results}
    out = harness.report(args, TITLE, intro, table, host, data_out)
    worst = max(r["overhead_ms_per_client_round"] for r in results)
    memory = max(max(r["client_uss_vs_base"], r["server_uss_vs_base"]) for r in results)
    print(
        f"scale: overhead up to {worst:.1f} ms per client-round (target "
        f"{TARGET_MS:g}); memory up to {memory:.2f}x the {base['clients']}-client "
        f"run's (target {TARGET_MEMORY:g}x); {out}"
    )


if __name__ == "__main__":
    main()
