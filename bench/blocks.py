"""Every registered benchmark's blocks: parameters per block, and the time of
one local epoch on 100 examples.

For each dataset, the model holding all its modalities (attention fusion) is
built; its parameters are counted per block (each encoder, fusion, head), and
one epoch of SGD (batch 16) over 100 random examples of its input shapes
(features precomputed: token ids for hashed text) is timed with one torch
thread, best of 3 after a warm-up epoch. Prints a markdown table; nothing is
downloaded, so the ``-mobilebert`` variants are timed without MobileBERT's own
forward pass (their features).

Usage: python bench/blocks.py
"""

import time

import numpy as np
import torch

from blossom_app.benchmarks import get_task, registered
from blossom_app.common.blocks import block_of
from blossom_app.common.model import build_model
from blossom_app.common.training import TrainingSettings, train
from blossom_app.data import Split

EXAMPLES, REPEATS = 100, 3


def examples(task, modalities, rng) -> Split:
    """``EXAMPLES`` random examples of ``modalities``' shapes and the labels."""
    inputs = {}
    for name in modalities:
        spec = task.modality(name)
        shape = (EXAMPLES, *spec.shape)
        inputs[name] = (
            rng.standard_normal(shape, dtype=np.float32)
            if spec.normalize
            else rng.integers(1, 100, shape).astype(np.float32)  # token ids
        )
    return Split(inputs, rng.integers(0, task.num_classes, EXAMPLES))


def measure(name: str) -> tuple[dict[str, int], float]:
    task = get_task(name)
    model = build_model(task, task.modality_names, "attention", seed=0)
    blocks: dict[str, int] = {}
    for key, parameter in model.named_parameters():
        blocks[block_of(key)] = blocks.get(block_of(key), 0) + parameter.numel()
    split = examples(task, task.modality_names, np.random.default_rng(0))
    settings = TrainingSettings(
        epochs=1, batch_size=16, learning_rate=0.01, momentum=0.9, weight_decay=1e-5
    )
    cpu = torch.device("cpu")
    train(model, split, settings, server_round=1, device=cpu, seed=0)  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        train(model, split, settings, server_round=1, device=cpu, seed=0)
        times.append(time.perf_counter() - start)
    return blocks, min(times)


def main() -> None:
    torch.set_num_threads(1)
    print(f"| dataset | parameters per block | epoch of {EXAMPLES} (s) |")
    print("|---|---|---|")
    for name in registered():
        blocks, seconds = measure(name)
        listed = ", ".join(f"{block} {count:,}" for block, count in blocks.items())
        print(f"| {name} | {listed} | {seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
