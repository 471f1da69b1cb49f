"""Local training and evaluation loops."""

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import MetricRecord
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from blossom_app.common import metrics as m
from blossom_app.common.metrics import accuracy, macro_f1
from blossom_app.data import Split


def local_seed(run_seed: int, partition_id: int, server_round: int) -> int:
    """A seed of its own for every client, round and run (shuffling, dropout)."""
    sequence = np.random.SeedSequence([run_seed, partition_id, server_round])
    return int(sequence.generate_state(1)[0])


def cosine_lr(base: float, server_round: int, num_rounds: int) -> float:
    """Learning rate of a round under cosine decay over rounds (round 1 = ``base``)."""
    return base * 0.5 * (1.0 + math.cos(math.pi * (server_round - 1) / num_rounds))


def _loader(
    split: Split,
    modalities: tuple[str, ...],
    batch_size: int,
    generator: torch.Generator | None = None,
) -> DataLoader:
    """Batches of ``split``; shuffled with ``generator`` when one is given."""
    tensors = [torch.from_numpy(split.inputs[m]) for m in modalities]
    dataset = TensorDataset(*tensors, torch.from_numpy(split.labels))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=generator is not None,
        generator=generator,
    )


def _batches(loader: DataLoader, modalities: tuple[str, ...], device: torch.device):
    for *inputs, labels in loader:
        yield (
            {m: x.to(device) for m, x in zip(modalities, inputs, strict=True)},
            labels.to(device),
        )


def _passes(loader: DataLoader, modalities: tuple[str, ...], device: torch.device):
    """Batches of one pass over ``loader`` after another, without end."""
    while True:
        yield from _batches(loader, modalities, device)


def proximal_term(
    model: nn.Module, anchor: Mapping[str, torch.Tensor], mu: float
) -> torch.Tensor:
    """FedProx's ``mu / 2 * ||w - w_anchor||^2`` over the parameters in
    ``anchor`` (the shared blocks as received): it pulls only those."""
    parameters = dict(model.named_parameters())
    squares = [((parameters[key] - value) ** 2).sum() for key, value in anchor.items()]
    return mu / 2 * torch.stack(squares).sum()


#: The client optimizers: ``sgd`` (with ``momentum``; the paper's for most
#: datasets) and ``adamw`` (the paper's for AV-MNIST; ``momentum`` unused).
CLIENT_OPTIMIZERS = ("sgd", "adamw")


def make_optimizer(
    name: str,
    model: nn.Module,
    learning_rate: float,
    *,
    momentum: float,
    weight_decay: float,
) -> torch.optim.Optimizer:
    """A fresh optimizer ``name`` over ``model``'s parameters (its state lives
    for one round's local training)."""
    if name == "adamw":
        return torch.optim.AdamW(
            model.parameters(), lr=learning_rate, weight_decay=weight_decay
        )
    return torch.optim.SGD(
        model.parameters(),
        lr=learning_rate,
        momentum=momentum,
        weight_decay=weight_decay,
    )


@dataclass(frozen=True)
class TrainingSettings:
    """How a client trains each round: one frozen object built once from the
    validated run config (``ExperimentConfig.training``), read by every client
    and by the centralized baseline.

    ``epochs`` per round of ``batch_size`` examples, and at least
    ``min_steps`` optimizer steps (``steps_per_round``); ``optimizer`` one of
    ``CLIENT_OPTIMIZERS``, whose rate starts at ``learning_rate`` and follows a
    cosine over ``num_rounds`` (``rate``); ``momentum`` (SGD's) and
    ``weight_decay``; with ``max_grad_norm`` > 0 each step's gradient is
    rescaled to at most that norm; with ``proximal_mu`` > 0 FedProx pulls the
    shared blocks towards their values as received.
    """

    epochs: int = 1
    batch_size: int = 16
    min_steps: int = 0
    learning_rate: float = 0.05
    num_rounds: int = 1
    optimizer: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 0.0
    proximal_mu: float = 0.0

    def rate(self, server_round: int) -> float:
        """The learning rate of round ``server_round``."""
        return cosine_lr(self.learning_rate, server_round, self.num_rounds)

    def steps_per_round(self, windows: int) -> int:
        """The optimizer steps of one round on ``windows`` training windows:
        ``epochs`` passes of ``ceil(windows / batch_size)`` steps, at least
        ``min_steps`` (a client with fewer windows than a batch would
        otherwise make one step per epoch)."""
        return max(self.min_steps, self.epochs * math.ceil(windows / self.batch_size))


def train(
    model: nn.Module,
    split: Split,
    settings: TrainingSettings,
    *,
    server_round: int,
    device: torch.device,
    seed: int,
    anchor: Mapping[str, torch.Tensor] | None = None,
    windows: int | None = None,
) -> float:
    """Train ``model`` in place for round ``server_round`` under ``settings``;
    return the mean training loss per example (the data loss, without the
    proximal term).

    The round makes ``settings.steps_per_round(windows)`` optimizer steps
    (default ``windows``: those of ``split``); passes over ``split`` follow
    each other, each reshuffled, as long as steps remain.

    ``seed`` fixes the shuffling and the dropout masks (see ``local_seed``).
    With ``settings.proximal_mu`` > 0, the parameters named in ``anchor`` are
    pulled towards its values (FedProx: the shared blocks as received).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    loader = _loader(split, model.modalities, settings.batch_size, generator)
    model.to(device).train()
    optimizer = make_optimizer(
        settings.optimizer,
        model,
        settings.rate(server_round),
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
    )
    criterion = nn.CrossEntropyLoss()
    parameters = dict(model.named_parameters())
    anchor = {
        key: value.detach().to(device=device, dtype=parameters[key].dtype)
        for key, value in (anchor or {}).items()
        if key in parameters
    }
    total_loss, seen = 0.0, 0
    steps = settings.steps_per_round(len(split) if windows is None else windows)
    batches = _passes(loader, model.modalities, device)
    for inputs, labels in itertools.islice(batches, steps):
        optimizer.zero_grad()
        loss = criterion(model(inputs), labels)
        objective = loss
        if settings.proximal_mu > 0 and anchor:
            objective = loss + proximal_term(model, anchor, settings.proximal_mu)
        objective.backward()
        if settings.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
        optimizer.step()
        total_loss += loss.item() * len(labels)
        seen += len(labels)
    return total_loss / max(seen, 1)


@dataclass(frozen=True)
class Evaluation:
    """Loss, accuracy and macro-F1 on one split, with the confusion matrix
    (``true x predicted``) so that metrics can also be pooled across clients."""

    loss: float
    accuracy: float
    macro_f1: float
    confusion: np.ndarray
    num_examples: int

    def to_metrics(self) -> MetricRecord:
        """As an evaluate reply carries it (keys in ``metrics.py``)."""
        return MetricRecord(
            {
                m.TEST_EXAMPLES: self.num_examples,
                m.TEST_LOSS: self.loss,
                m.ACCURACY: self.accuracy,
                m.MACRO_F1: self.macro_f1,
                m.CONFUSION: self.confusion.ravel().tolist(),
            }
        )


#: Evaluation keeps no gradients, so it runs in large batches whatever the
#: training batch size: the same predictions, in about half the time on a CPU.
EVALUATION_BATCH_SIZE = 256


_CROSS_ENTROPY = nn.CrossEntropyLoss(reduction="none")


def evaluate(
    model: nn.Module,
    split: Split,
    *,
    num_classes: int,
    device: torch.device,
    batch_size: int = EVALUATION_BATCH_SIZE,
) -> Evaluation:
    """Evaluate ``model`` on ``split``."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    total_loss = 0.0
    for logits, labels in _predictions(model, split, device, batch_size):
        total_loss += float(_CROSS_ENTROPY(logits, labels).sum())
        predicted = logits.argmax(dim=1)
        np.add.at(confusion, (labels.cpu().numpy(), predicted.cpu().numpy()), 1)
    count = int(confusion.sum())
    return Evaluation(
        loss=total_loss / max(count, 1),
        accuracy=accuracy(confusion),
        macro_f1=macro_f1(confusion),
        confusion=confusion,
        num_examples=count,
    )


def example_losses(
    model: nn.Module,
    split: Split,
    *,
    device: torch.device,
    batch_size: int = EVALUATION_BATCH_SIZE,
) -> np.ndarray:
    """The cross-entropy of ``model`` on each example of ``split``, in order."""
    losses = [
        _CROSS_ENTROPY(logits, labels).cpu().numpy()
        for logits, labels in _predictions(model, split, device, batch_size)
    ]
    return np.concatenate(losses) if losses else np.zeros(0, dtype=np.float32)


def _predictions(
    model: nn.Module, split: Split, device: torch.device, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(logits, labels) of ``model`` in eval mode, batch by batch over ``split``."""
    model.to(device).eval()
    loader = _loader(split, model.modalities, batch_size)
    with torch.no_grad():
        for inputs, labels in _batches(loader, model.modalities, device):
            yield model(inputs), labels
