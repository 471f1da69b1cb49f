"""The centralized baseline: what the data allows when it is pooled.

For each modality set of the mix, one model trains on the union of every
client's train split (those modalities), with the run's model, optimizer,
batch size and schedule: ``num-server-rounds x local-epochs`` epochs, the
learning rate cosine-decayed per round as in the federation; with
``normalize-inputs``, inputs standardized with the pooled train statistics.
After each round (``evaluate-every``) each client is evaluated on its own
test split with its set's model. The result is written as an experiment of policy
``centralized`` in the same results tree, so ``blossom compare`` puts it next
to the federated policies and ``local``.
"""

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from logging import INFO
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from flwr.supercore import log

from blossom_app.common import metrics as m
from blossom_app.common.blocks import Policy
from blossom_app.common.config import ExperimentConfig, Scalar
from blossom_app.common.model import build_model
from blossom_app.common.policies import CENTRALIZED
from blossom_app.common.profile import NodeProfile
from blossom_app.common.training import (
    Evaluation,
    evaluate,
    local_seed,
    train,
)
from blossom_app.data import ClientData, Split, load_client_data
from blossom_app.reporting.output import ExperimentOutput
from blossom_app.reporting.run_record import RunRecord
from blossom_app.server.evaluations import RoundEvaluations


def client_data(
    config: ExperimentConfig, partition_id: int, modalities: tuple[str, ...]
) -> ClientData:
    """Client ``partition_id``'s arrays in ``modalities`` under ``config``'s split."""
    return load_client_data(
        replace(config.data, validation_fraction=0.0), partition_id, modalities
    )


def _union(splits: list[Split]) -> Split:
    inputs = {
        name: np.concatenate([split.inputs[name] for split in splits])
        for name in splits[0].inputs
    }
    return Split(inputs, np.concatenate([split.labels for split in splits]))


@dataclass(frozen=True)
class SetJob:
    """One modality set's model in one run: its pooled train windows and the
    test splits of the clients holding that set (partition -> split)."""

    config: ExperimentConfig
    modalities: tuple[str, ...]
    stream: int  # its seed stream, past the clients' partition ids
    seed: int
    train: Split
    tests: dict[int, Split]


def train_set(job: SetJob) -> dict[int, dict[int, Evaluation]]:
    """Train one set's model for the run's rounds, evaluating its clients after
    each evaluated round: round -> partition -> evaluation. One torch thread:
    the sets train in parallel processes."""
    torch.set_num_threads(1)
    config, device = job.config, torch.device("cpu")
    model = build_model(config.task, job.modalities, config.fusion, job.seed)
    if config.normalize_inputs:  # the pooled train split's statistics
        model.fit_normalization(job.train)
    rounds, results = config.num_server_rounds, {}
    for server_round in range(1, rounds + 1):
        train(
            model,
            job.train,
            config.training,  # no anchor: no proximal term
            server_round=server_round,
            device=device,
            seed=local_seed(job.seed, job.stream, server_round),
        )
        if server_round % config.evaluate_every == 0 or server_round == rounds:
            results[server_round] = {
                p: evaluate(
                    model, test, num_classes=config.task.num_classes, device=device
                )
                for p, test in job.tests.items()
            }
    return results


def run_centralized(config: ExperimentConfig, run_config: dict[str, Scalar]) -> Path:
    """Train and evaluate the centralized baseline of ``config`` (every run's
    modality-set models in parallel processes, up to one per core); write it
    as an experiment; return its directory."""
    clients = range(config.mix.num_clients)
    sets = sorted({config.mix.modalities_for(p) for p in clients})
    # every client's train windows, in each modality set's columns
    pooled = {
        modalities: _union([client_data(config, p, modalities).train for p in clients])
        for modalities in sets
    }
    tests = {
        p: client_data(config, p, config.mix.modalities_for(p)).test for p in clients
    }
    profiles = {
        p: NodeProfile(p, config.mix.modalities_for(p), p, 0, len(tests[p]), "cpu", "")
        for p in clients
    }
    cell = replace(config, policy=Policy(CENTRALIZED, frozenset()))
    output = ExperimentOutput(cell, {**run_config, "aggregation": CENTRALIZED})
    log(INFO, "BLOSSOM centralized baseline: %s", output.path)
    jobs = [
        SetJob(
            config,
            modalities,
            len(clients) + index,
            config.run_seed(run_index),
            pooled[modalities],
            {p: tests[p] for p in clients if profiles[p].modalities == modalities},
        )
        for run_index in range(config.num_runs)
        for index, modalities in enumerate(sets)
    ]
    # every run's sets in one pool, so no core idles while a run's last set trains
    workers = min(len(jobs), os.cpu_count() or 1)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(train_set, jobs))
    for run_index in range(config.num_runs):
        merged: dict[int, dict[int, Evaluation]] = {}
        for per_round in results[run_index * len(sets) : (run_index + 1) * len(sets)]:
            for server_round, per_client in per_round.items():
                merged.setdefault(server_round, {}).update(per_client)
        record = RunRecord(profiles)
        evaluations = RoundEvaluations(record)
        for server_round, per_client in sorted(merged.items()):
            for p in clients:
                evaluations.collect(server_round, p, per_client[p].to_metrics())
            summary = evaluations.summarize(server_round)
            log(
                INFO,
                "Centralized, run %d, round %d: weighted accuracy %.3f",
                run_index,
                server_round,
                summary[m.WEIGHTED_ACCURACY],
            )
        output.write_run(run_index, record)
    output.finish()
    return output.path
