"""The default run against the compute floor of the same work, in one invocation.

Floor: what the run must compute, in plain PyTorch and nothing else. Every
client of the default run (same data, modalities, model, batch size,
optimizer, epochs per round and rounds) trains on its own train split and,
after every round, evaluates on its own test split (DECISIONS 16), one thread
per client, as many client processes in parallel as there are cores. No
Flower, no Ray, no messages, no aggregation, no export, no reporting; the
worker processes are started and warmed up before the clock starts.

Run: the README's main command, ``blossom run`` (the app's defaults: 10
SuperNodes, 60 rounds, export on), timed from start to exit (Flower's
SuperLink and Ray start-up included). Its own ``timing.csv`` splits the rounds
into train, evaluate, aggregate, checkpoint and export phases; the rest is
start-up, reporting and shutdown.

Targets: run <= 1.3 x floor (issue 10); the checkpoint written every round
(``checkpoint-every = 1``, the default) <= 2 % of a round (DECISIONS 30),
measured in the same run. ``--quick``: 10 rounds of each.

Usage: python bench/overhead.py [--quick] [--out bench/results/overhead.json]
"""

import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import harness
import torch
from torch import nn

from blossom_app.client.personalization import choose_blocks
from blossom_app.common.blocks import NORMALIZATION, block_of
from blossom_app.common.config import ExperimentConfig
from blossom_app.common.model import build_model
from blossom_app.common.presets import app_defaults
from blossom_app.common.training import example_losses
from blossom_app.data import load_client_data
from blossom_app.tools.centralized import client_data

NAME = "overhead"
TITLE = "Overhead (`bench/overhead.py`)"
TARGET = 1.3
CHECKPOINT_TARGET = 0.02
EVAL_BATCH = 256


def client_work(config: ExperimentConfig, partition_id: int) -> float:
    """One client's training and per-round evaluation in plain PyTorch; returns
    its compute seconds. Under adaptive personalization also its choice of own
    blocks each time the run builds its personalized model: once a round from
    the second on (a train message evaluates, then trains, the model it
    builds) and once for the final evaluation; the app's ``choose_blocks``, on
    its validation split, with last round's model as its own. It trains as
    many steps as on all its windows, as the app does."""
    torch.set_num_threads(1)
    modalities = config.mix.modalities_for(partition_id)
    data = client_data(config, partition_id, modalities)
    validation = load_client_data(config.data, partition_id, modalities).validation
    start = time.perf_counter()
    train_x = {m: torch.from_numpy(data.train.inputs[m]) for m in modalities}
    train_y = torch.from_numpy(data.train.labels)
    test_x = {m: torch.from_numpy(data.test.inputs[m]) for m in modalities}
    test_y = torch.from_numpy(data.test.labels)
    model = build_model(config.task, modalities, config.fusion, config.seed)
    loss_fn = nn.CrossEntropyLoss()
    rounds, training = config.num_server_rounds, config.training
    own: dict[str, torch.Tensor] = {}  # last round's model: the client's own
    for server_round in range(1, rounds + 1):
        lr = (
            training.learning_rate
            * 0.5
            * (1 + math.cos(math.pi * (server_round - 1) / rounds))
        )
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=lr,
            momentum=training.momentum,
            weight_decay=training.weight_decay,
        )
        if config.adaptive and own:  # as the app: from the second round on
            choose_own_blocks(model, own, validation)
        model.train()
        for _ in range(training.epochs):
            order = torch.randperm(len(train_y))
            for begin in range(0, len(order), training.batch_size):
                index = order[begin : begin + training.batch_size]
                optimizer.zero_grad()
                logits = model({m: x[index] for m, x in train_x.items()})
                loss_fn(logits, train_y[index]).backward()
                optimizer.step()
        model.eval()
        own = {k: v.clone() for k, v in model.state_dict().items()}
        with torch.no_grad():
            for begin in range(0, len(test_y), EVAL_BATCH):
                model({m: x[begin : begin + EVAL_BATCH] for m, x in test_x.items()})
    if config.adaptive:  # the final evaluation's personalized model
        choose_own_blocks(model, own, validation)
    return time.perf_counter() - start


def choose_own_blocks(model: nn.Module, own: dict, validation) -> None:
    """Adaptive personalization's search over ``model``'s blocks (its outcome
    does not matter here: only its compute)."""
    model.eval()
    candidates = sorted({block_of(k) for k in own} - {NORMALIZATION})
    choose_blocks(
        model,
        own,
        candidates,
        lambda m: example_losses(m, validation, device=torch.device("cpu")),
    )


def warm_up(_: int) -> int:
    torch.set_num_threads(1)
    return os.getpid()


def floor(config: ExperimentConfig, workers: int) -> dict[str, float]:
    """Wall and summed compute seconds of every client's work, ``workers`` at a
    time."""
    clients = range(config.mix.num_clients)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(warm_up, range(workers * 4)))  # processes up, torch loaded
        start = time.perf_counter()
        seconds = list(pool.map(client_work, [config] * len(clients), clients))
        wall = time.perf_counter() - start
    return {"wall": wall, "compute": sum(seconds)}


def main() -> None:
    args = harness.parser(NAME, __doc__).parse_args()
    overrides = {"num-server-rounds": 10} if args.quick else {}
    app = Path(__file__).parents[1]
    config = ExperimentConfig.from_run_config({**app_defaults(app), **overrides})
    workers = os.cpu_count() or 1
    host = harness.machine()

    measured = floor(config, workers)
    run = harness.simulate(overrides, config.mix.num_clients, harness.workdir(NAME))
    phases = {
        phase: sum(
            float(row.get(f"{phase}_seconds") or 0) for row in run.rows("timing.csv")
        )
        for phase in ("train", "evaluate", "aggregate", "checkpoint", "export")
    }
    rest = run.wall_seconds - sum(phases.values())
    ratio = run.wall_seconds / measured["wall"]
    # a round: its train, evaluate, aggregate and checkpoint phases
    in_rounds = sum(v for phase, v in phases.items() if phase != "export")
    checkpoint_share = phases["checkpoint"] / in_rounds
    rows = [
        ["floor: plain PyTorch, wall", f"{measured['wall']:.1f}", "1.00"],
        ["floor: summed client compute", f"{measured['compute']:.1f}", ""],
        ["`blossom run`, wall", f"{run.wall_seconds:.1f}", f"{ratio:.2f}"],
        *[
            [f"  {phase} phases", f"{seconds:.1f}", f"{seconds / measured['wall']:.2f}"]
            for phase, seconds in phases.items()
        ],
        [
            "  start-up, reporting, shutdown",
            f"{rest:.1f}",
            f"{rest / measured['wall']:.2f}",
        ],
    ]
    table = harness.markdown_table(["what", "seconds", "x floor"], rows)
    verdict = "met" if ratio <= TARGET else "not met"
    checkpoint_verdict = "met" if checkpoint_share <= CHECKPOINT_TARGET else "not met"
    rounds = config.num_server_rounds
    intro = (
        f"The default run ({config.mix.num_clients} clients, mix "
        f"{config.mix.label}, {rounds} rounds, "
        f"{config.training.epochs} local epoch(s), batch {config.training.batch_size}) "
        "against "
        f"the compute floor of the same training and per-round evaluation in plain "
        f"PyTorch, {workers} client processes at a time, one thread each. Target "
        f"run <= {TARGET} x floor: **{verdict}** ({ratio:.2f} x). The checkpoint "
        f"written after every round took {1000 * phases['checkpoint'] / rounds:.0f} "
        f"ms per round, {100 * checkpoint_share:.2f} % of a round's time; target "
        f"<= {100 * CHECKPOINT_TARGET:.0f} %: **{checkpoint_verdict}**."
    )
    data = {
        "floor": measured,
        "run_wall": run.wall_seconds,
        "phases": phases,
        "rest": rest,
        "ratio": ratio,
        "target": TARGET,
        "checkpoint_share": checkpoint_share,
        "checkpoint_target": CHECKPOINT_TARGET,
    }
    out = harness.report(args, TITLE, intro, table, host, data)
    print(
        f"overhead: run {run.wall_seconds:.1f} s / floor {measured['wall']:.1f} s = "
        f"{ratio:.2f}x (target <= {TARGET}); checkpoints "
        f"{100 * checkpoint_share:.2f} % of a round; {out}"
    )


if __name__ == "__main__":
    main()
