"""Memory of the default run, and what the imports alone cost.

Runs the default simulation (10 SuperNodes, app defaults, export on) for 10
rounds (``--quick``: 3) and samples, every 0.5 s, each Ray ClientApp process
(``ray::ClientAppActor``, which serves the simulated clients) and the
``flwr-simulation`` process (which hosts the ServerApp): peak RSS (``VmRSS``),
USS (private pages) and PSS (private + a share of shared pages), from
``/proc`` (``harness.sample_tree``). Target: a client process <= 0.6 GB RSS
(GB = 10^9 B).

Then, in a fresh interpreter each, the RSS and USS right after the imports a
ClientApp process needs: nothing, ``import torch`` (a CUDA build here, which
maps its CUDA libraries at import), ``import torch, ray, flwr.clientapp``, and
``import blossom_app.client.client_app``; the part of a client process's memory that
no code of ours can lower short of importing less.

Usage: python bench/memory.py [--quick] [--out bench/results/memory.json]
"""

import json
import subprocess
import sys

import harness

NAME = "memory"
TITLE = "Memory (`bench/memory.py`)"
TARGET_GB = 0.6  # RSS of a client process
NODES = 10
KINDS = {
    "client": "ClientApp process (`ray::ClientAppActor`)",
    "server": "ServerApp process (`flwr-simulation`)",
}
IMPORTS = (
    "pass",
    "import torch",
    "import torch, ray, flwr.clientapp",
    "import blossom_app.client.client_app",
)
PROBE = """
{imports}
from pathlib import Path
import json
def kb(path):
    lines = Path(path).read_text().splitlines()
    return {{n: int(v.split()[0]) * 1024 for n, _, v in
            (line.partition(":") for line in lines) if v.endswith(" kB")}}
rollup = kb("/proc/self/smaps_rollup")
print(json.dumps({{"rss": kb("/proc/self/status")["VmRSS"],
                  "uss": rollup["Private_Clean"] + rollup["Private_Dirty"]}}))
"""


def import_cost(imports: str) -> dict[str, int]:
    """RSS and USS in bytes of a fresh interpreter right after ``imports``."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(imports=imports)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def gb(value: int) -> str:
    return f"{value / harness.GB:.2f}"


def main() -> None:
    args = harness.parser(NAME, __doc__).parse_args()
    rounds = 3 if args.quick else 10
    host = harness.machine()
    overrides = {"num-server-rounds": rounds, "export-onnx": True}
    run = harness.simulate(overrides, NODES, harness.workdir(NAME), sample_memory=True)
    memory = run.to_json()["memory"]
    imports = {text: import_cost(text) for text in IMPORTS}

    rows = []
    for kind, label in KINDS.items():
        peak = memory.get(kind)
        if peak is None:
            rows.append([label, "not seen", "", "", ""])
            continue
        verdict = ""
        if kind == "client":
            verdict = "yes" if peak["rss"] <= TARGET_GB * harness.GB else "no"
        figures = [gb(peak[figure]) for figure in ("rss", "uss", "pss")]
        rows.append([f"{label}, {peak['processes']} seen", *figures, verdict])
    for text, cost in imports.items():
        label = "no import" if text == "pass" else f"after `{text}`"
        figures = [gb(cost["rss"]), gb(cost["uss"]), ""]
        rows.append([f"fresh interpreter, {label}", *figures, ""])
    table = harness.markdown_table(
        ["process", "peak RSS GB", "USS GB", "PSS GB", f"<= {TARGET_GB} GB RSS"],
        rows,
    )
    intro = (
        f"The default run (10 SuperNodes, mix 3-3-4, export on) for {rounds} "
        "rounds: peak memory per process kind over 0.5 s samples (a peak per "
        "figure, over the processes of that kind); then what a fresh interpreter "
        "holds right after the imports a ClientApp process needs (GB = 10^9 B). "
        f"Target: a client process <= {TARGET_GB} GB RSS. torch here is a CUDA "
        "build (it maps its CUDA libraries at import)."
    )
    data = {
        "rounds": rounds,
        "target_client_rss_gb": TARGET_GB,
        "run": run.to_json(),
        "imports": imports,
    }
    out = harness.report(args, TITLE, intro, table, host, data)
    client, server = memory.get("client", {}), memory.get("server", {})
    print(
        f"memory: client process peak RSS {gb(client.get('rss', 0))} GB "
        f"(USS {gb(client.get('uss', 0))}, target <= {TARGET_GB}), ServerApp "
        f"{gb(server.get('rss', 0))} GB; import torch alone "
        f"{gb(imports['import torch']['rss'])} GB RSS, blossom_app.client.client_app "
        f"{gb(imports['import blossom_app.client.client_app']['rss'])} GB; {out}"
    )


if __name__ == "__main__":
    main()
