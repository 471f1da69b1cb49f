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

from dataclasses import replace
from logging import INFO
from pathlib import Path

import numpy as np
import torch
from flwr.supercore import log

from . import metrics as m
from .blocks import Policy
from .config import ExperimentConfig, Scalar
from .data import ClientData, Split, load_client_data
from .evaluations import RoundEvaluations
from .fleet import NodeProfile
from .model import build_model
from .reporting.output import ExperimentOutput
from .run_record import RunRecord
from .training import cosine_lr, evaluate, local_seed, train

POLICY = "centralized"


def client_data(
    config: ExperimentConfig, partition_id: int, modalities: tuple[str, ...]
) -> ClientData:
    """Client ``partition_id``'s arrays in ``modalities`` under ``config``'s split."""
    return load_client_data(
        config.task,
        source=config.data_source,
        partitioner=config.partitioner,
        partition_id=partition_id,
        num_partitions=config.mix.num_clients,
        modalities=tuple(modalities),
        alpha=config.dirichlet_alpha,
        seed=config.seed,
        test_fraction=config.test_fraction,
    )


def _union(splits: list[Split]) -> Split:
    inputs = {
        name: np.concatenate([split.inputs[name] for split in splits])
        for name in splits[0].inputs
    }
    return Split(inputs, np.concatenate([split.labels for split in splits]))


def run_centralized(config: ExperimentConfig, run_config: dict[str, Scalar]) -> Path:
    """Train and evaluate the centralized baseline of ``config``; write it as an
    experiment; return its directory."""
    device = torch.device("cpu")
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
    cell = replace(config, policy=Policy(POLICY, frozenset()))
    output = ExperimentOutput(cell, {**run_config, "aggregation": POLICY})
    log(INFO, "BLOSSOM centralized baseline: %s", output.path)
    for run_index in range(config.num_runs):
        seed = config.run_seed(run_index)
        record = RunRecord(profiles)
        evaluations = RoundEvaluations(record)
        models = {s: build_model(config.task, s, config.fusion, seed) for s in sets}
        if config.normalize_inputs:  # the pooled train split's statistics
            for modalities, model in models.items():
                model.fit_normalization(pooled[modalities])
        rounds = config.num_server_rounds
        for server_round in range(1, rounds + 1):
            for modalities, model in models.items():
                train(
                    model,
                    pooled[modalities],
                    epochs=config.local_epochs,
                    batch_size=config.batch_size,
                    learning_rate=cosine_lr(config.learning_rate, server_round, rounds),
                    momentum=config.momentum,
                    weight_decay=config.weight_decay,
                    device=device,
                    # a seed stream of its own, past the clients' partition ids
                    seed=local_seed(
                        seed, len(clients) + sets.index(modalities), server_round
                    ),
                )
            if server_round % config.evaluate_every and server_round != rounds:
                continue
            for p in clients:
                model = models[profiles[p].modalities]
                result = evaluate(
                    model, tests[p], num_classes=config.task.num_classes, device=device
                )
                evaluations.collect(server_round, p, result.to_metrics())
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
