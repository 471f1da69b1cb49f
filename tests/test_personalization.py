"""The default recipe's pieces and adaptive personalization, driven through the
real strategy and ClientApp in-process: each client's input statistics stay
its own; presets resolve with explicit keys winning; an adaptive client picks,
block by block, its own or the federation's version, never sends a private
block and reports its choice."""

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord
from rounds import (
    DEFAULTS,
    NODES,
    RUN_CONFIG,
    WATCH,
    LocalGrid,
    contexts,
    global_arrays,
    round_config,
    strategy,
    train_round,
)

from blossom_app.client.client_app import app as client_app
from blossom_app.client.client_state import PRIVATE
from blossom_app.client.local_client import LocalClient
from blossom_app.client.personalization import choose_blocks
from blossom_app.common.config import ExperimentConfig
from blossom_app.common.model import build_model
from blossom_app.common.presets import resolve_preset
from blossom_app.common.protocol import EVALUATION, OWN_BLOCKS, PERSONALIZATION
from blossom_app.errors import ConfigError


def test_each_client_standardizes_with_its_own_statistics_and_keeps_them():
    server, nodes = strategy("full-model"), contexts()
    replies, _ = train_round(server, global_arrays(), nodes, server_round=1)
    for message in replies:  # full-model sends every block, but no statistic
        assert not any(k.startswith("normalizers.") for k in message.content["arrays"])
    means = {}
    for node_id, context in nodes.items():
        client = LocalClient.from_context(context)
        kept = context.state[PRIVATE]
        for modality in NODES[node_id]:
            windows = client.data.train.inputs[modality]
            mean = kept[f"normalizers.{modality}.mean"].numpy().ravel()
            std = kept[f"normalizers.{modality}.std"].numpy().ravel()
            np.testing.assert_allclose(mean, windows.mean(axis=(0, 1)), rtol=1e-4)
            np.testing.assert_allclose(std, windows.std(axis=(0, 1)), rtol=1e-4)
            means[node_id, modality] = mean
    acc_only, _, both = NODES
    assert not np.allclose(means[acc_only, "acc"], means[both, "acc"])


def test_without_normalization_the_inputs_pass_unchanged():
    nodes = contexts({**RUN_CONFIG, "normalize-inputs": False})
    client = LocalClient.from_context(next(iter(nodes.values())))
    model = client.personalized_model(0, ArrayRecord())
    for stats in model.normalization().values():
        assert set(stats["mean"]) == {0.0} and set(stats["std"]) == {1.0}


def test_the_paper_preset_resolves_to_the_papers_recipe():
    paper = ExperimentConfig.from_run_config({**DEFAULTS, "preset": "paper"})
    training = paper.training
    assert (training.epochs, training.batch_size, paper.num_server_rounds) == (
        1,
        16,
        60,
    )
    assert (training.learning_rate, training.momentum, training.weight_decay) == (
        0.05,
        0.9,
        1e-5,
    )
    assert not paper.normalize_inputs and paper.transport == "fp32"
    assert paper.server_optimizer.name == "fedavg" and paper.personalization == "fixed"
    default = ExperimentConfig.from_run_config(DEFAULTS)
    assert default.training.epochs == 3 and default.normalize_inputs


def test_keys_the_user_sets_win_over_the_preset_and_resolving_twice_is_stable():
    chosen = {**DEFAULTS, "preset": "paper", "local-epochs": 2, "seed": 7}
    once = resolve_preset(chosen, DEFAULTS)
    assert once["local-epochs"] == 2 and once["seed"] == 7
    assert once["normalize-inputs"] is False  # from the preset
    assert resolve_preset(once, DEFAULTS) == once


def test_an_unknown_preset_lists_the_datasets_presets():
    with pytest.raises(ConfigError, match="paper") as error:
        ExperimentConfig.from_run_config({**DEFAULTS, "preset": "papr"})
    assert "'preset'" in str(error.value)


def test_a_preset_setting_an_unknown_key_is_refused(tmp_path):
    (tmp_path / "conf" / "watch").mkdir(parents=True)
    (tmp_path / "conf" / "watch" / "mine.toml").write_text("lr = 0.1\n")
    with pytest.raises(ConfigError, match="'lr'|lr") as error:
        resolve_preset({**DEFAULTS, "preset": "mine"}, DEFAULTS, tmp_path)
    assert "mine.toml" in str(error.value)


def federated_and_own():
    """A model holding the federation's blocks, and a client's own versions."""
    model = build_model(WATCH, ("acc", "gyro"), "attention", seed=0)
    federated = {k: v.clone() for k, v in model.state_dict().items()}
    own = {k: v + 1.0 for k, v in federated.items()}
    return model, federated, own


BLOCKS = ["encoder:acc", "encoder:gyro", "fusion", "head"]
EXAMPLES = 40


def takes_own(model, own, block: str) -> bool:
    key = {"head": "head.0.weight", "fusion": "fusion.score.weight"}[block]
    return torch.equal(model.state_dict()[key], own[key])


def test_the_search_keeps_the_combination_with_the_clearest_gain():
    model, federated, own = federated_and_own()
    distance = lambda m, key, ref: float((m.state_dict()[key] - ref[key]).abs().sum())  # noqa: E731

    def losses(candidate):  # best: own head, the federation's fusion and encoders
        loss = (
            distance(candidate, "head.0.weight", own)
            + distance(candidate, "fusion.score.weight", federated)
            + distance(candidate, "encoders.acc.gru.weight_hh_l0", federated)
        )
        return np.full(EXAMPLES, loss)

    chosen = choose_blocks(model, own, BLOCKS, losses)
    # encoder:gyro does not change the loss: the tie goes to the federation
    assert chosen == {"head"}
    state = model.state_dict()
    torch.testing.assert_close(state["head.2.bias"], own["head.2.bias"])
    torch.testing.assert_close(
        state["fusion.score.weight"], federated["fusion.score.weight"]
    )


@pytest.mark.parametrize(
    ("mean_gain", "taken"), [(0.05, False), (0.25, False), (0.5, True)]
)
def test_own_blocks_must_beat_the_federation_by_more_than_the_noise(mean_gain, taken):
    """Own head: per-example gains of ``mean_gain`` on average, spread 1
    (standard error 1/sqrt(40) = 0.16). A mean below two standard errors is
    noise, and the federation's head stays."""
    model, _, own = federated_and_own()
    spread = np.random.default_rng(0).standard_normal(EXAMPLES)
    spread = (spread - spread.mean()) / spread.std(ddof=1)  # mean 0, std 1

    def losses(candidate):
        federation = np.full(EXAMPLES, 2.0)
        gain = mean_gain + spread if takes_own(candidate, own, "head") else 0.0
        return federation - gain

    chosen = choose_blocks(model, own, BLOCKS, losses)
    assert chosen == ({"head"} if taken else set())
    assert takes_own(model, own, "head") is taken


@pytest.mark.parametrize("policy", ["private-head-fusion", "full-model"])
def test_adaptive_clients_choose_report_and_never_send_a_private_block(policy):
    config = {**RUN_CONFIG, "aggregation": policy, "personalization": "adaptive"}
    server, nodes = strategy(policy), contexts(config)
    replies, arrays = train_round(server, global_arrays(), nodes, server_round=1)
    replies2, _ = train_round(server, arrays, nodes, server_round=2)
    forbidden = {"normalizers"}
    if policy == "private-head-fusion":
        forbidden |= {"head", "fusion"}
    for message in (*replies, *replies2):
        assert not {k.split(".")[0] for k in message.content["arrays"]} & forbidden
    for message in replies2:  # round 1's evaluation, with the blocks chosen
        assert EVALUATION in message.content.metric_records
        own = message.content.config_records[PERSONALIZATION][OWN_BLOCKS]
        held = {
            "head",
            "fusion",
            *(f"encoder:{m}" for m in NODES[message.metadata.src_node_id]),
        }
        assert own == "-" or set(own.split("+")) <= held
        if policy == "private-head-fusion":
            assert {"fusion", "head"} <= set(own.split("+"))
    rows = server.record.evaluate
    assert rows and all(OWN_BLOCKS.replace("-", "_") in row for row in rows)
    for node_id, context in nodes.items():
        client = LocalClient.from_context(context)
        # the validation split is held out of training, the own versions kept
        assert len(client.data.validation) > 0
        kept = set(context.state[PRIVATE].keys())
        assert any(k.startswith("encoders.") for k in kept)
        fixed = LocalClient.from_context(
            contexts({**config, "personalization": "fixed"})[node_id]
        ).data
        assert fixed.validation is None
        assert len(client.data.test) == len(fixed.test)  # the same test windows
        # the validation windows come out of the train ones (and the windows
        # straddling their cut are dropped)
        held = len(client.data.train) + len(client.data.validation)
        assert len(fixed.train) * 0.8 <= held < len(fixed.train)


def test_an_evaluate_reply_says_which_blocks_are_the_clients_own():
    server = strategy("private-head")
    nodes = contexts({**RUN_CONFIG, "aggregation": "private-head"})
    _, arrays = train_round(server, global_arrays(), nodes, server_round=1)
    messages = server.configure_evaluate(2, arrays, round_config(), LocalGrid(nodes))
    replies = [client_app(m, nodes[m.metadata.dst_node_id]) for m in messages]
    assert replies
    for reply in replies:
        assert reply.content.config_records[PERSONALIZATION][OWN_BLOCKS] == "head"


def test_a_single_validation_example_is_no_evidence():
    model, _, own = federated_and_own()

    def losses(candidate):  # one window, on which the own head looks far better
        return np.array([0.1 if takes_own(candidate, own, "head") else 5.0])

    assert choose_blocks(model, own, BLOCKS, losses) == set()


def test_a_block_kept_as_its_own_travels_as_its_change_applied_to_the_federations():
    """The server sends a head that is confidently wrong (zero weights, a last
    bias that puts 97 % of the probability on class 0), so every client keeps
    its own head. What it sends for the head is the federation's plus its own
    head's change in training, not its own head; the own head goes on in its
    private state."""
    config = {**RUN_CONFIG, "aggregation": "full-model", "personalization": "adaptive"}
    server, nodes = strategy("full-model"), contexts(config)
    _, arrays = train_round(server, global_arrays(), nodes, server_round=1)
    state = arrays.to_torch_state_dict()
    wrong = {
        k: torch.zeros_like(v) if k.startswith("head.") else v for k, v in state.items()
    }
    heads = [k for k in wrong if k.startswith("head.")]
    assert heads[-1].endswith(".bias")
    wrong[heads[-1]][0] = 5.0

    def own_state(node_id):
        return nodes[node_id].state.array_records[PRIVATE].to_torch_state_dict()

    before = {node_id: own_state(node_id) for node_id in nodes}
    replies, _ = train_round(server, ArrayRecord(wrong), nodes, server_round=2)

    def close(a, b):  # within fp16 transport
        return torch.allclose(a.float(), b, atol=1e-3, rtol=1e-3)

    for reply in replies:
        node_id = reply.metadata.src_node_id
        own = own_state(node_id)
        sent = reply.content["arrays"].to_torch_state_dict()
        for key in heads:
            change = own[key] - before[node_id][key]
            assert change.abs().sum() > 0  # the own head trained on
            assert close(sent[key], wrong[key] + change)  # not the own head
            assert not close(sent[key], own[key])
        # every other block travels as trained (taken from the federation) or
        # as the federation's plus its change (kept)
        for key, value in sent.items():
            kept = wrong[key] + (own[key] - before[node_id][key])
            assert close(value, own[key]) or close(value, kept), key


def test_an_adaptive_client_makes_as_many_steps_as_on_all_its_windows():
    """Holding out a validation split costs no compute: an adaptive client
    passes over its remaining windows more than once per epoch, making as
    many steps as a client of the same policy training on all of them."""

    def steps_per_round(personalization: str) -> tuple[int, LocalClient]:
        config = {**RUN_CONFIG, "local-epochs": 2, "batch-size": 16}
        context = contexts({**config, "personalization": personalization})[103]
        client = LocalClient.from_context(context)
        model = client.personalized_model(0, ArrayRecord())
        calls = []
        model.register_forward_hook(lambda *_: calls.append(1))
        client.train(model, 0, 1, ArrayRecord())
        return len(calls), client

    fixed, fixed_client = steps_per_round("fixed")
    adaptive, client = steps_per_round("adaptive")
    data = client.data
    assert fixed == 2 * -(-len(fixed_client.data.train) // 16)
    assert adaptive == 2 * -(-(len(data.train) + len(data.validation)) // 16)
    assert adaptive > 2 * -(-len(data.train) // 16)  # more than 2 passes
    assert 0.9 * fixed <= adaptive <= fixed  # the windows straddling the cut aside
