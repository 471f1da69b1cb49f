"""The ``blossom`` command: ``run`` runs the Flower app once (a local
simulation sized to its modality mix), ``centralized`` trains the pooled-data
baseline, ``sweep`` runs an experiment grid,
``compare`` tables and plots finished experiments, ``export`` re-exports a
saved personalized model to ONNX, ``info`` describes the app or a results
directory."""

import argparse
import sys
from pathlib import Path

import click
from flwr.common.config import parse_config_args

from blossom_app.common.config import ExperimentConfig
from blossom_app.common.presets import app_defaults, resolve_preset
from blossom_app.errors import ConfigError, DataError
from blossom_app.reporting.compare import Comparison, compare
from blossom_app.reporting.layout import (
    CONFIG,
    RESULTS_ENV,
    read_config,
    results_root,
)
from blossom_app.server.checkpoint import CheckpointError
from blossom_app.server.resume import find_resume
from blossom_app.tools.flwr_runner import (
    installing_superexecs,
    run_app,
    this_environment,
)
from blossom_app.tools.info import describe_app, describe_results
from blossom_app.tools.preflight import check_data
from blossom_app.tools.sweep import SweepGrid, run_sweep

FAILURE_TAIL = 40  # lines of a failed cell's `flwr run` output to show


def _print_comparisons(comparisons: list[Comparison]) -> None:
    for comparison in comparisons:
        print(f"\n{comparison.text}\n\nWritten to {comparison.out}:")
        print("  " + "  ".join(path.name for path in comparison.files))


def _overrides(command: str, texts: list[str] | None) -> dict | None:
    """``--run-config`` values as a dict; None (after saying why) if unreadable."""
    try:
        overrides = parse_config_args(texts)
        if texts and not overrides:
            raise ValueError(f"no key=value in {texts}")
    except (ValueError, click.ClickException) as error:
        message = getattr(error, "message", error)
        print(f"blossom {command}: bad --run-config: {message}", file=sys.stderr)
        return None
    return overrides


def _run(args: argparse.Namespace) -> int:
    overrides = _overrides("run", args.run_config)
    if overrides is None:
        return 2
    app = args.app.resolve()
    try:
        defaults = app_defaults(app)
        if args.resume is not None:
            overrides = _resumed(args.resume, overrides, defaults)
            if overrides is None:
                return 0
        config = ExperimentConfig.from_run_config({**defaults, **overrides}, defaults)
        check_data(config)
    except (ConfigError, DataError, CheckpointError) as error:
        print(f"blossom run: {error}", file=sys.stderr)
        return 2
    installing = installing_superexecs()
    if installing:
        print(
            "blossom run: a Flower SuperLink already running here installs every "
            "run's dependencies into a fresh environment (gigabytes of wheels):\n  "
            + "\n  ".join(installing)
            + "\nStop it (kill the --parent-pid named above), then run this again: "
            "the SuperLink it starts will use this environment.",
            file=sys.stderr,
        )
        return 2
    outcome = run_app(
        app,
        overrides,
        num_supernodes=args.num_supernodes or config.mix.num_clients,
        cpus_per_client=args.cpus_per_client,
        env=this_environment(),
        echo=sys.stdout,
    )
    if not outcome.ok:
        print(
            f"blossom run: run {outcome.run_id} ended {outcome.status}; "
            "its log is above (`flwr log <run id>` shows it again)",
            file=sys.stderr,
        )
        return 1
    return 0


def _resumed(directory: Path, overrides: dict, defaults: dict) -> dict | None:
    """The run config that continues ``directory``: its own, ``overrides``
    over it, ``resume`` set; checked against its checkpoint before anything
    starts. None if the experiment finished already (said so)."""
    path = directory.expanduser().resolve()
    saved = read_config(path) if (path / CONFIG).is_file() else {}
    resumed = {**saved, **overrides, "resume": str(path)}
    point = find_resume(str(path), {**defaults, **resumed}, defaults)
    if point.finished:
        print(f"blossom run: {point.path} finished already: nothing to resume")
        return None
    print(f"Resuming {point.path}: run {point.run_index}, after round "
          f"{point.server_round}")  # fmt: skip
    return resumed


def _centralized(args: argparse.Namespace) -> int:
    # torch: only for this command
    from blossom_app.tools.centralized import run_centralized

    overrides = _overrides("centralized", args.run_config)
    if overrides is None:
        return 2
    app = args.app.resolve()
    defaults = app_defaults(app)
    try:
        run_config = resolve_preset({**defaults, **overrides}, defaults, app)
        config = ExperimentConfig.from_run_config(run_config, defaults)
    except (ConfigError, DataError) as error:
        print(f"blossom centralized: {error}", file=sys.stderr)
        return 2
    print(f"Centralized baseline written to {run_centralized(config, run_config)}")
    return 0


def sweep_grid(args: argparse.Namespace) -> SweepGrid:
    """The grid a parsed ``blossom sweep`` command line asks for."""
    return SweepGrid(
        tuple(args.datasets),
        tuple(args.partitioners),
        tuple(args.mixes),
        tuple(args.policies),
    )


def _sweep(args: argparse.Namespace) -> int:
    root = results_root(args.results_dir)
    overrides = _overrides("sweep", args.run_config)
    if overrides is None:
        return 2
    if args.rounds is not None:
        overrides["num-server-rounds"] = args.rounds
    if args.num_runs is not None:
        overrides["num-runs"] = args.num_runs
    app = args.app.resolve()
    try:
        cells = sweep_grid(args).cells(app, root, overrides)
    except (ConfigError, DataError) as error:
        print(f"blossom sweep: {error}", file=sys.stderr)
        return 2
    print(f"Sweep: {len(cells)} experiment(s) of {app}, results in {root}")
    report = run_sweep(cells, app, root, cpus_per_client=args.cpus_per_client)
    for name, outcome in report.failed.items():
        tail = "\n".join(outcome.output.splitlines()[-FAILURE_TAIL:])
        print(f"\n--- {name} failed ({outcome.status}); end of its output:\n{tail}")
    _print_comparisons(report.comparisons)
    return 1 if report.failed else 0


def _compare(args: argparse.Namespace) -> int:
    comparisons = compare(args.paths, args.out)
    if not comparisons:
        print("blossom compare: no finished experiment found", file=sys.stderr)
        return 1
    _print_comparisons(comparisons)
    return 0


def _export(args: argparse.Namespace) -> int:
    from blossom_app.onnx.export import reexport  # torch + onnx: only for this command

    if not args.weights.is_file():
        print(f"blossom export: no such file: {args.weights}", file=sys.stderr)
        return 2
    report = reexport(args.weights, args.out, quantize=args.quantize)
    where = args.out or args.weights.parent
    print(f"Exported {args.weights} to {where}:")
    for key, value in report.to_record().items():
        print(f"  {key}: {value}")
    return 0


def _info(args: argparse.Namespace) -> int:
    print(describe_results(args.path) if args.path else describe_app())
    return 0


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="blossom", description=__doc__)
    commands = main_parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="run the app once as a local simulation; exit 1 if the run failed",
        description="`flwr run <app> --stream` with one simulated SuperNode per "
        "client of the modality mix, in this Python environment (Flower's "
        "per-run dependency installation is switched off), streaming the log; "
        "the exit code says whether the run completed (`flwr run --stream` "
        "exits 0 either way).",
    )
    run.add_argument(
        "app", nargs="?", type=Path, default=Path("."), help="app dir (default: .)"
    )
    run.add_argument(
        "--run-config",
        action="append",
        help="run-config values, e.g. \"num-server-rounds=5 aggregation='full-model'\"",
    )
    run.add_argument(
        "--resume",
        type=Path,
        metavar="RESULTS_DIR",
        help="continue the run of this results directory from its checkpoint, "
        "with the config in its config.toml (--run-config may change only the "
        "keys docs/reliability.md lists)",
    )
    run.add_argument(
        "--num-supernodes",
        type=int,
        help="simulated SuperNodes (default: the clients of the modality mix)",
    )
    run.add_argument(
        "--cpus-per-client", type=int, default=1, help="CPUs per simulated client"
    )
    run.set_defaults(handler=_run)

    centralized = commands.add_parser(
        "centralized",
        help="the centralized baseline: one model per modality set on all "
        "clients' training data",
        description="Train one model per modality set of the mix on the union "
        "of every client's train split (same model, optimizer, batch size and "
        "schedule as the run config), evaluate each client on its own test "
        "split, and write it as an experiment of policy 'centralized' in the "
        "results tree, where `blossom compare` shows it beside the policies.",
    )
    centralized.add_argument(
        "--app", type=Path, default=Path("."), help="app dir (default: .)"
    )
    centralized.add_argument(
        "--run-config", action="append", help="e.g. \"partitioner='natural'\""
    )
    centralized.set_defaults(handler=_centralized)

    sweep = commands.add_parser(
        "sweep",
        help="run a grid of experiments with `flwr run`, then compare them",
        description="Run every cell of datasets x partitioners x policies x mixes "
        "as one `flwr run` simulation (one SuperNode per client of the mix). "
        "Cells already complete with the same run config are skipped, so an "
        "interrupted sweep resumes. The default grid is the paper's 18 cells plus "
        "the local baseline (training alone) for each partitioner and mix.",
    )
    paper = SweepGrid()
    sweep.add_argument("--datasets", nargs="+", default=paper.datasets)
    sweep.add_argument("--partitioners", nargs="+", default=paper.partitioners)
    sweep.add_argument("--mixes", nargs="+", default=paper.mixes)
    sweep.add_argument(
        "--policies",
        nargs="+",
        default=paper.policies,
        help="aggregation policies, <policy>+adaptive, local, and centralized (the "
        "pooled-data baseline of the same config)",
    )
    sweep.add_argument("--rounds", type=int, help="num-server-rounds of every cell")
    sweep.add_argument("--num-runs", type=int, help="runs (seeds) per cell")
    sweep.add_argument(
        "--results-dir",
        default="",
        help=f"results root (default: ${RESULTS_ENV}, else ~/blossom-results)",
    )
    sweep.add_argument(
        "--app",
        type=Path,
        default=Path("."),
        help="the Flower app directory (with pyproject.toml; default: .)",
    )
    sweep.add_argument(
        "--run-config",
        action="append",
        help='extra run-config values for every cell, e.g. "batch-size=32"',
    )
    sweep.add_argument(
        "--cpus-per-client", type=int, default=1, help="CPUs per simulated client"
    )
    sweep.set_defaults(handler=_sweep)

    comparison = commands.add_parser(
        "compare",
        help="table and plots comparing policies and mixes",
        description="Compare finished experiments per dataset and partitioner: "
        "final metrics ± std per policy and mix, and each policy's relative gain "
        "over full-model. Writes <dataset>/<partitioner>/comparison/.",
    )
    comparison.add_argument(
        "paths", nargs="+", type=Path, help="experiment directories or results roots"
    )
    comparison.add_argument(
        "--out", type=Path, help="write under this root instead of the results'"
    )
    comparison.set_defaults(handler=_compare)

    export = commands.add_parser(
        "export",
        help="export a saved personalized model (model.pt) to ONNX again",
        description="Rebuild the model saved in a node's model.pt and write "
        "model.onnx and model.json again (next to it, or into --out), checked "
        "against torch with onnxruntime; --quantize adds model.int8.onnx.",
    )
    export.add_argument("weights", type=Path, help="a model.pt written by a run")
    export.add_argument("--out", type=Path, help="directory (default: beside it)")
    export.add_argument(
        "--quantize", action="store_true", help="also write dynamic int8 ONNX"
    )
    export.set_defaults(handler=_export)

    info = commands.add_parser(
        "info",
        help="datasets, policies and choices; or what a results directory holds",
        description="Without a path: the datasets (modalities, shapes, classes), "
        "aggregation policies, fusions and partitioners. With a path: every "
        "experiment under it, whether it finished, and its resolved run config.",
    )
    info.add_argument("path", nargs="?", type=Path, help="a results directory")
    info.set_defaults(handler=_info)
    return main_parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.handler(args)
