"""Head-study models: every head trains and scripts; stem pools and bad settings."""

from __future__ import annotations

import pytest
import torch

from ocrloc.config import load_config
from ocrloc.data.rules import get_rule
from ocrloc.engine.experiment import make_test_set
from ocrloc.models.build import build
from ocrloc.models.study import STUDY_HEADS, StemPool, StudyCriterion, StudyNet, StudyPostprocess


def batch(n=3, side=32):
    images = torch.rand(n, 1, side, side)
    targets = [{"labels": torch.tensor([k % 10]), "keypoints": torch.tensor([[[10.0 + k, 12.0, 2.0]]])} for k in range(n)]
    return images, targets


@pytest.mark.parametrize("head", STUDY_HEADS)
def test_every_head_trains_predicts_and_scripts(head):
    torch.manual_seed(0)
    model = StudyNet(head, inputs=("canvas", "stage2"), width=8, hidden=16, argmax_channels=2)
    images, targets = batch()
    outputs = model.train()(images, targets)
    assert outputs["logits"].shape == (3, 10) and outputs["points"].shape == (3, 10, 2)
    loss, terms = StudyCriterion()(outputs, targets)
    assert set(terms) == {"class", "point"} and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.point_mlp.parameters())
    model.eval()
    detections = StudyPostprocess(32)(model(images))
    assert len(detections) == 3 and detections[0]["keypoints"].shape == (1, 1, 3)
    assert detections[0]["boxes"].tolist() == [[0.0, 0.0, 32.0, 32.0]]
    scripted = torch.jit.script(model)
    for key, value in model(images).items():
        assert torch.allclose(value, scripted(images)[key], atol=1e-5), key


def test_point_at_the_true_class_is_what_the_loss_sees():
    outputs = {"logits": torch.zeros(1, 10), "points": torch.zeros(1, 10, 2)}
    outputs["points"][0, 4] = torch.tensor([10.0, 12.0])  # exact at class 4, far at every other
    targets = [{"labels": torch.tensor([4]), "keypoints": torch.tensor([[[10.0, 12.0, 2.0]]])}]
    _, terms = StudyCriterion()(outputs, targets)
    assert terms["point"].item() == 0.0


def test_stem_pools():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert StemPool("avg")(x).item() == 2.5
    assert StemPool("max")(x).item() == 4.0
    assert StemPool("min")(x).item() == 1.0


def test_random_dummy_inputs_change_every_call_and_constant_ones_do_not():
    images, _ = batch(2)
    for dummy, same in (("constant", True), ("random", False)):
        torch.manual_seed(0)
        model = StudyNet("extremes", width=8, hidden=16, argmax_channels=2, dummy=dummy).eval()
        assert torch.equal(model(images)["points"], model(images)["points"]) == same


def test_bad_study_settings_name_the_problem():
    with pytest.raises(ValueError, match="unknown study head 'mlp'"):
        StudyNet("mlp")
    with pytest.raises(ValueError, match=r"study inputs must be a non-empty subset of canvas, stage1, stage2, got \['stage3'\]"):
        StudyNet("pool", inputs=("stage3",))
    with pytest.raises(ValueError, match="unknown stem pool 'median'"):
        StudyNet("pool", stem_pool="median")


def test_build_reads_the_study_section():
    config = load_config(None, ["model.type=study", "data.preset=single", "model.study.head=soft_argmax",
                                "model.study.inputs=[canvas]", "model.study.width=8"])
    model, criterion, postprocess = build(config)
    assert isinstance(model, StudyNet) and model.head == "soft_argmax" and model.inputs == ["canvas"]
    assert isinstance(criterion, StudyCriterion) and postprocess.canvas_size == 32


@pytest.mark.parametrize("rule", ["all10", "seed37"])
def test_rule_prior_start_gives_the_spec_points_before_any_training(rule, pools):
    test = make_test_set("single", rule, 200, 1000)
    torch.manual_seed(0)
    model = StudyNet("extremes", inputs=("canvas",), width=8, hidden=16, rule_prior=get_rule(rule)).eval()
    with torch.no_grad():
        points = model(test.images)["points"]
    error = (points[torch.arange(200), test.labels] - test.points).norm(dim=1)
    # Exact but for a soft cut at faint edge pixels and the mask's (not the intensity's) centroid.
    assert error.median() < 0.01 and (error < 0.5).float().mean() >= 0.95
    scripted = torch.jit.script(model)
    assert torch.allclose(scripted(test.images[:4])["points"], points[:4], atol=1e-4)


def test_rule_prior_needs_the_extremes_head_on_the_canvas():
    with pytest.raises(ValueError, match=r"rule_prior needs the extremes head on the canvas alone, got head 'pool'"):
        StudyNet("pool", inputs=("canvas",), rule_prior=get_rule("all10"))
    with pytest.raises(ValueError, match=r"inputs \['canvas', 'stage2'\]"):
        StudyNet("extremes", inputs=("canvas", "stage2"), rule_prior=get_rule("all10"))
    with pytest.raises(ValueError, match="rule_prior: class 10 outside 0..9"):
        StudyNet("extremes", inputs=("canvas",), rule_prior={10: "center"})
    config = load_config(None, ["model.type=study", "data.preset=single", "model.study.point_init=spec"])
    with pytest.raises(ValueError, match="unknown model.study.point_init 'spec'; known: default, rule"):
        build(config)
