"""Head-study models: every head trains and scripts; stem pools and bad settings."""

from __future__ import annotations

import pytest
import torch

from ocrloc.config import load_config
from ocrloc.data.canvas import CanvasGenerator
from ocrloc.data.datasets import SyntheticCanvasDataset, collate_detection
from ocrloc.data.rules import get_rule
from ocrloc.research.head_study import make_test_set
from ocrloc.models.build import build
from ocrloc.research.oracle import tell_study_net
from ocrloc.research.study import STUDY_HEADS, StemPool, StudyCriterion, StudyNet, StudyPredictor


def batch(n=3, side=32):
    images = torch.rand(n, 1, side, side)
    targets = [{"labels": torch.tensor([k % 10]), "keypoints": torch.tensor([[[10.0 + k, 12.0, 2.0]]])} for k in range(n)]
    return images, targets


@pytest.mark.parametrize("head", STUDY_HEADS)
def test_every_head_trains_predicts_and_scripts(head):
    torch.manual_seed(0)
    model = StudyNet(head, inputs=("canvas", "stage2"), width=8, hidden=16, argmax_channels=2, num_classes=10)
    images, targets = batch()
    outputs = model.train()(images, targets)
    assert outputs["logits"].shape == (3, 10) and outputs["points"].shape == (3, 10, 2)
    loss, terms = StudyCriterion()(outputs, targets)
    assert set(terms) == {"class", "point"} and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.point_mlp.parameters())
    model.eval()
    predictor = StudyPredictor(model)
    detections = predictor(images)
    assert len(detections) == 3 and detections[0]["keypoints"].shape == (1, 1, 3)
    assert detections[0]["boxes"].tolist() == [[0.0, 0.0, 32.0, 32.0]]
    # Every class's point rides along, so the study can score the point at the true class.
    assert torch.equal(detections[1]["class_points"][0], model(images)["points"][1])
    scripted = torch.jit.script(predictor)
    for eager, script in zip(detections, scripted(images)):
        for key, value in eager.items():
            assert torch.allclose(value, script[key], atol=1e-5), key


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
        model = StudyNet("extremes", width=8, hidden=16, argmax_channels=2, dummy=dummy, num_classes=10).eval()
        assert torch.equal(model(images)["points"], model(images)["points"]) == same


def test_bad_study_settings_name_the_problem():
    with pytest.raises(ValueError, match="unknown study head 'mlp'"):
        StudyNet("mlp", num_classes=10)
    with pytest.raises(ValueError, match=r"study inputs must be a non-empty subset of canvas, stage1, stage2, got \['stage3'\]"):
        StudyNet("pool", inputs=("stage3",), num_classes=10)
    with pytest.raises(ValueError, match="unknown stem pool 'median'"):
        StudyNet("pool", stem_pool="median", num_classes=10)


def test_build_reads_the_study_section():
    config = load_config(None, ["model.type=study", "data.preset=single", "model.study.head=soft_argmax",
                                "model.study.inputs=[canvas]", "model.study.width=8"])
    detector = build(config)
    model = detector.model
    assert isinstance(model, StudyNet) and model.head == "soft_argmax" and model.inputs == ["canvas"]
    assert isinstance(detector.criterion, StudyCriterion) and detector.predictor.canvas_size == 32
    # Its own input rule: exactly the 32 x 32 canvases it was built for.
    assert detector.predictor.accepts(32, 32) and not detector.predictor.accepts(64, 64)


@pytest.mark.parametrize("rule", ["all10", "seed37"])
def test_rule_oracle_start_gives_the_spec_points_before_any_training(rule, pools):
    test = make_test_set("single", rule, 200, 1000)
    torch.manual_seed(0)
    model = StudyNet("extremes", inputs=("canvas",), width=8, hidden=16, num_classes=10)
    tell_study_net(model, get_rule(rule))
    model.eval()
    with torch.no_grad():
        points = model(test.images)["points"]
    error = (points[torch.arange(200), test.labels] - test.points).norm(dim=1)
    # Exact but for a soft cut at faint edge pixels and the mask's (not the intensity's) centroid.
    assert error.median() < 0.01 and (error < 0.5).float().mean() >= 0.95
    scripted = torch.jit.script(model)
    assert torch.allclose(scripted(test.images[:4])["points"], points[:4], atol=1e-4)


def test_rule_oracle_needs_the_extremes_head_on_the_canvas_with_a_gradient_path():
    with pytest.raises(ValueError, match=r"rule_prior needs the extremes head on the canvas alone, got head 'pool'"):
        tell_study_net(StudyNet("pool", inputs=("canvas",), num_classes=10), get_rule("all10"))
    with pytest.raises(ValueError, match=r"inputs \['canvas', 'stage2'\]"):
        tell_study_net(StudyNet("extremes", inputs=("canvas", "stage2"), num_classes=10), get_rule("all10"))
    with pytest.raises(ValueError, match="rule_prior: class 10 outside 0..9"):
        tell_study_net(StudyNet("extremes", inputs=("canvas",), num_classes=10), {10: "center"})
    with pytest.raises(ValueError, match="needs model.study.point_fit 'gradient'"):
        tell_study_net(StudyNet("extremes", inputs=("canvas",), point_fit="ridge", num_classes=10), get_rule("all10"))
    with pytest.raises(ValueError, match="model.study.point_init = 'spec' is not one of learned, rule"):
        load_config(None, ["model.type=study", "data.preset=single", "model.study.point_init=spec"])


def canvas_batches(rule, count, batch, pools):
    generator = CanvasGenerator("single", rule, "train", 0, pools["train"])
    dataset = SyntheticCanvasDataset(generator, count)
    for start in range(0, count, batch):
        yield collate_detection([dataset[i] for i in range(start, start + batch)])


@pytest.mark.parametrize("rule", ["all10", "seed37"])
def test_ridge_head_learns_the_rule_from_annotations_without_a_gradient_step(rule, pools):
    """Identity-started canvas maps give the ink's geometry; the closed-form fit reads which
    coordinates each class's annotated point is, from 1,280 canvases, with no optimiser at all."""
    torch.manual_seed(0)
    model = StudyNet("extremes", inputs=("canvas",), width=8, hidden=16, point_fit="ridge", canvas_maps="identity", num_classes=10)
    assert model.linear_path is None and not model.point_mlp[-1].weight.any()
    model.train()
    with torch.no_grad():
        for images, targets in canvas_batches(rule, 1280, 64, pools):
            model(images, targets)
    test = make_test_set("single", rule, 300, 1000)
    model.eval()
    with torch.no_grad():
        points = model(test.images)["points"]
    error = (points[torch.arange(300), test.labels] - test.points).norm(dim=1)
    assert error.median() < 0.02 and (error < 0.5).float().mean() >= 0.98
    scripted = torch.jit.script(model)
    assert torch.allclose(scripted(test.images[:4])["points"], points[:4], atol=1e-4)


def test_ridge_and_identity_settings_name_the_problem():
    with pytest.raises(ValueError, match="point_fit 'ridge' fits the linear path of a coordinate head"):
        StudyNet("pool", point_fit="ridge", num_classes=10)
    with pytest.raises(ValueError, match="unknown point_fit 'lasso'"):
        StudyNet("extremes", point_fit="lasso", num_classes=10)
    with pytest.raises(ValueError, match="unknown canvas_maps 'ones'"):
        StudyNet("extremes", canvas_maps="ones", num_classes=10)
    with pytest.raises(ValueError, match="identity-started maps need a coordinate head on a one-channel input"):
        StudyNet("pool", inputs=("canvas",), canvas_maps="identity", num_classes=10)
    config = load_config(None, ["model.type=study", "data.preset=single", "model.study.head=extremes",
                                "model.study.inputs=[canvas]", "model.study.point_fit=ridge",
                                "model.study.canvas_maps=identity", "model.study.width=8"])
    model = build(config).model
    assert model.readout is not None and model.point_features[0].conv.weight.eq(1).all()
