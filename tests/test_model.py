"""The model runs with any subset of modalities; fusions are checkable by hand."""

import pytest
import torch

from blossom_app.benchmarks import get_task
from blossom_app.common.fusion import AttentionFusion, ConcatFusion
from blossom_app.common.model import build_model

WATCH = get_task("watch")


@pytest.mark.parametrize("fusion", ["attention", "concat"])
@pytest.mark.parametrize("modalities", [("acc",), ("gyro",), ("acc", "gyro")])
def test_model_builds_and_runs_with_only_its_modalities(fusion, modalities):
    model = build_model(WATCH, modalities, fusion, seed=0)
    inputs = {m: torch.randn(4, 128, 3) for m in modalities}
    logits = model(inputs)
    assert logits.shape == (4, WATCH.num_classes)
    encoders = {
        key.split(".")[1] for key in model.state_dict() if key.startswith("encoders.")
    }
    assert encoders == set(modalities)
    projections = {
        key.split(".")[2]
        for key in model.state_dict()
        if key.startswith("fusion.projections.")
    }
    assert projections == set(modalities)


def test_attention_fusion_of_one_modality_is_its_projection():
    fusion = AttentionFusion({"a": 3, "b": 3}, out_dim=2)
    x = torch.randn(5, 3)
    expected = torch.relu(fusion.projections["a"](x))
    torch.testing.assert_close(fusion({"a": x}), expected)


def test_attention_weights_are_a_convex_combination():
    fusion = AttentionFusion({"a": 2, "b": 2}, out_dim=2)
    with torch.no_grad():
        for name in ("a", "b"):
            fusion.projections[name].weight.copy_(torch.eye(2))
            fusion.projections[name].bias.zero_()
        fusion.score.weight.zero_()  # equal scores -> equal weights
    out = fusion({"a": torch.tensor([[1.0, 0.0]]), "b": torch.tensor([[3.0, 2.0]])})
    torch.testing.assert_close(out, torch.tensor([[2.0, 1.0]]))


def test_concat_fusion_equals_concatenation_with_zero_filled_absent_modality():
    fusion = ConcatFusion({"a": 2, "b": 3}, out_dim=4)
    with torch.no_grad():
        fusion.bias.normal_()
    weight = torch.cat(
        [fusion.projections["a"].weight, fusion.projections["b"].weight], 1
    )
    x_a = torch.randn(6, 2)
    expected = torch.relu(
        torch.cat([x_a, torch.zeros(6, 3)], 1) @ weight.T + fusion.bias
    )
    torch.testing.assert_close(fusion({"a": x_a}), expected)


def test_same_seed_same_initial_weights():
    a = build_model(WATCH, ("acc", "gyro"), "attention", seed=3).state_dict()
    b = build_model(WATCH, ("acc", "gyro"), "attention", seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
