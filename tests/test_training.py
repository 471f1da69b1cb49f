"""Metrics and schedules checkable by hand."""

import numpy as np
import pytest

from blossom_app.common.config import ExperimentConfig
from blossom_app.common.metrics import macro_f1
from blossom_app.common.training import TrainingSettings, cosine_lr, local_seed
from blossom_app.errors import ConfigError


def test_macro_f1_by_hand():
    # true x predicted; class 0: tp 2, fn 1, fp 0 -> f1 = 4/5
    # class 1: tp 1, fn 0, fp 1 -> f1 = 2/3; class 2 absent everywhere -> ignored
    confusion = np.array([[2, 1, 0], [0, 1, 0], [0, 0, 0]])
    assert macro_f1(confusion) == pytest.approx((4 / 5 + 2 / 3) / 2)


def test_pooled_macro_f1_differs_from_the_mean_of_client_f1():
    client_a = np.array([[5, 0], [0, 0]])  # only class 0, perfect: f1 = 1
    client_b = np.array([[0, 0], [5, 5]])  # class 1 half wrong
    pooled = macro_f1(client_a + client_b)
    assert macro_f1(client_a) == 1.0
    # pooled: class 0 tp 5 fp 5 fn 0 -> 2/3; class 1 tp 5 fn 5 -> 2/3
    assert pooled == pytest.approx(2 / 3)


def test_cosine_lr_starts_at_base_and_decays():
    assert cosine_lr(0.05, 1, 60) == pytest.approx(0.05)
    assert cosine_lr(0.05, 31, 60) == pytest.approx(0.025)
    rates = [cosine_lr(0.05, r, 60) for r in range(1, 61)]
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False)) and rates[-1] > 0


def test_local_seeds_differ_per_client_round_and_run():
    seeds = {local_seed(run, client, rnd) for run in (42, 43) for client in range(10)
             for rnd in range(1, 4)}  # fmt: skip
    assert len(seeds) == 2 * 10 * 3


def test_fedprox_pulls_only_the_shared_blocks():
    from flwr.app import ArrayRecord, Context, RecordDict
    from rounds import RUN_CONFIG

    from blossom_app.client.local_client import LocalClient
    from blossom_app.common.training import proximal_term

    config = {**RUN_CONFIG, "aggregation": "private-head", "proximal-mu": 10.0}
    node = {"partition-id": 2, "num-partitions": 3}
    client = LocalClient.from_context(Context(1, 7, node, RecordDict(), config))
    model = client.personalized_model(0, ArrayRecord())
    shared = client.experiment.policy.shared_keys(model.state_dict())
    anchor = {k: v.detach() + 0.1 for k, v in model.named_parameters() if k in shared}
    proximal_term(model, anchor, mu=10.0).backward()
    for key, parameter in model.named_parameters():
        pulled = parameter.grad is not None and bool(parameter.grad.abs().sum() > 0)
        assert pulled == (key in shared), key  # never a private (head) parameter

    # in training: shared blocks stay nearer to what was received
    def distance_after(mu: float) -> dict[str, float]:
        ctx = Context(1, 7, node, RecordDict(), {**config, "proximal-mu": mu})
        local = LocalClient.from_context(ctx)
        trained = local.personalized_model(0, ArrayRecord())
        start = {k: v.clone() for k, v in trained.state_dict().items()}
        received = ArrayRecord({k: start[k] for k in shared})  # as the server sent
        local.train(trained, 0, 1, received)
        return {
            k: float((v - start[k]).norm()) for k, v in trained.state_dict().items()
        }

    plain, proximal = distance_after(0.0), distance_after(10.0)
    assert sum(proximal[k] for k in shared) < sum(plain[k] for k in shared)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_gradient_clipping_bounds_each_step_and_both_optimizers_train(optimizer):
    """``max-grad-norm`` rescales each step's gradient: with plain SGD one
    step moves the weights by at most lr x the norm; AdamW lowers the loss."""
    import torch

    from blossom_app.benchmarks import get_task
    from blossom_app.common.model import build_model
    from blossom_app.common.training import train
    from blossom_app.data import Split

    task = get_task("watch")
    rng = np.random.default_rng(0)
    x = {m: rng.standard_normal((32, 128, 3), dtype=np.float32) for m in ("acc",)}
    split = Split(x, rng.integers(0, task.num_classes, 32))

    def run(clip: float, epochs: int = 1, batch: int = 32) -> tuple[float, float]:
        model = build_model(task, ("acc",), "attention", seed=0)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        settings = TrainingSettings(
            epochs=epochs, batch_size=batch,
            learning_rate=1.0 if optimizer == "sgd" else 1e-3,
            optimizer=optimizer, max_grad_norm=clip,
        )  # fmt: skip
        loss = train(
            model, split, settings, server_round=1, device=torch.device("cpu"), seed=0
        )
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        return float((after - before).norm()), loss

    if optimizer == "sgd":
        assert run(1e-3)[0] <= 1e-3 * (1 + 1e-4)  # one step of lr 1
        assert run(0.0)[0] > 1e-2
    else:  # AdamW's steps do not scale with the gradient: it learns
        first = run(0.0, epochs=1, batch=8)[1]
        assert run(0.0, epochs=6, batch=8)[1] < first


def test_min_local_steps_makes_a_small_client_train_at_least_that_many_steps():
    from flwr.app import ArrayRecord, Context, RecordDict
    from rounds import RUN_CONFIG

    from blossom_app.client.local_client import LocalClient

    def steps(**overrides) -> tuple[int, int]:
        config = {**RUN_CONFIG, "local-epochs": 2, "batch-size": 16, **overrides}
        node = {"partition-id": 0, "num-partitions": 3}
        client = LocalClient.from_context(Context(1, 7, node, RecordDict(), config))
        model = client.personalized_model(0, ArrayRecord())
        calls = []
        hook = model.register_forward_hook(lambda *_: calls.append(1))
        client.train(model, 0, 1, ArrayRecord())
        hook.remove()
        return len(calls), len(client.data.train)

    plain, windows = steps()
    assert plain == 2 * -(-windows // 16)  # epochs x batches
    assert steps(**{"min-local-steps": plain + 7})[0] == plain + 7  # raised
    assert steps(**{"min-local-steps": 1})[0] == plain  # a floor, never fewer
    with pytest.raises(ConfigError, match="min-local-steps"):
        ExperimentConfig.from_run_config({**RUN_CONFIG, "min-local-steps": -1})
