"""torchvision baselines on ocrloc's backbone: build, train/eval forward, labels, the box-to-point rule."""

from __future__ import annotations

import pytest
import torch

from ocrloc.config import load_config
from ocrloc.engine.checkpoint import detector_from_checkpoint
from ocrloc.engine.trainer import Trainer
from ocrloc.models.baselines import (BASELINE_TYPES, LOSS_TERMS, BaselinePredictor, BoxPointPostprocess, DetectorLoss,
                                     TorchvisionDetector)
from ocrloc.models.build import build

def tiny(kind: str, **kwargs) -> TorchvisionDetector:
    return TorchvisionDetector(kind, backbone="test_resnet", fpn_channels=32, num_classes=10, num_keypoints=1, **kwargs)


def targets():
    # A `3` (top-left corner wanted) and a thin `1` (bottommost), as the datasets yield them.
    return [{
        "boxes": torch.tensor([[10.0, 12.0, 30.0, 40.0], [60.0, 50.0, 64.0, 74.0]]),
        "labels": torch.tensor([3, 1]),
        "keypoints": torch.tensor([[[10.0, 12.0, 2.0]], [[62.0, 74.0, 2.0]]]),
        "image_id": 1,
    }]


@pytest.mark.parametrize("kind", BASELINE_TYPES)
def test_baseline_trains_and_predicts_through_the_ocrloc_interface(kind):
    torch.manual_seed(0)
    model = tiny(kind, score_threshold=0.0)
    images = torch.rand(1, 1, 128, 128)
    loss, terms = DetectorLoss()(model.train()(images, targets()), targets())
    assert set(terms) == set(LOSS_TERMS[kind])
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    stem = next(model.detector.backbone.body.parameters())
    assert stem.grad is not None and stem.grad.abs().sum() > 0

    decoder = BoxPointPostprocess.from_rule("all10", 10, label_offset=model.label_offset, from_keypoints=kind == "keypointrcnn")
    with torch.no_grad():
        (det,) = BaselinePredictor(model, decoder).eval()(images)
    n = det["scores"].shape[0]
    assert 0 < n <= 100
    assert det["boxes"].shape == (n, 4) and det["keypoints"].shape == (n, 1, 3)
    assert det["labels"].dtype == torch.int64 and det["labels"].min() >= 0 and det["labels"].max() <= 9
    assert torch.all(det["scores"][:-1] >= det["scores"][1:])


@pytest.mark.parametrize("kind", ["retinanet", "keypointrcnn"])
def test_eval_mode_gives_the_loss_terms_without_touching_batch_norm_or_the_random_state(kind):
    """The family contract: outputs of the same kind in both modes (torchvision computes a baseline's
    losses inside its forward, so these are its outputs)."""
    torch.manual_seed(0)
    model = tiny(kind).eval()
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    images = torch.rand(1, 1, 128, 128)
    running, rng = norm.running_mean.clone(), torch.get_rng_state()
    with torch.no_grad():
        losses = model(images, targets())
    assert {name.replace("loss_", "", 1) for name in losses} == set(LOSS_TERMS[kind])
    assert all(torch.isfinite(v) for v in losses.values())
    assert torch.equal(norm.running_mean, running) and torch.equal(torch.get_rng_state(), rng)
    assert not model.training and not model.detector.training


def test_outputs_without_targets_is_an_error():
    with pytest.raises(ValueError, match="retinanet: torchvision computes a baseline's outputs, its losses, from targets"):
        tiny("retinanet").train()(torch.rand(1, 1, 64, 64))


def test_canvases_are_not_resized():
    model = tiny("retinanet").eval()
    batch, _ = model.detector.transform([torch.rand(1, 64, 96)])
    assert tuple(batch.tensors.shape) == (1, 1, 64, 96)
    assert batch.image_sizes == [(64, 96)]


@pytest.mark.parametrize("kind, offset", [("retinanet", 0), ("fcos", 0), ("ssd", 1), ("keypointrcnn", 1)])
def test_labels_keep_background_free_where_torchvision_reserves_label_0(kind, offset):
    model = tiny(kind)
    assert model.label_offset == offset
    converted = model._torchvision_target(targets()[0])
    assert converted["labels"].tolist() == [3 + offset, 1 + offset]
    if kind == "keypointrcnn":
        kps = converted["keypoints"]
        assert kps.shape == (2, 10, 3)
        assert kps[0, 3].tolist() == [10.0, 12.0, 1.0] and kps[1, 1].tolist() == [62.0, 74.0, 1.0]
        assert kps[:, :, 2].sum() == 2  # every other class's channel is invisible (no loss)
    else:
        assert "keypoints" not in converted


def test_box_to_point_rule_on_hand_built_boxes():
    box = [10.0, 20.0, 30.0, 60.0]  # x1, y1, x2, y2: center (20, 40)
    expected = {  # all10: the rule (docs/task.md, "Rules") applied to box geometry
        0: (20.0, 20.0),  # topmost
        1: (20.0, 60.0),  # bottommost
        2: (10.0, 40.0),  # leftmost
        3: (10.0, 20.0),  # topleft
        4: (30.0, 40.0),  # rightmost
        5: (20.0, 40.0),  # centroid -> box center
        6: (20.0, 60.0),  # bottommost
        7: (20.0, 40.0),  # center
        8: (20.0, 40.0),  # centroid
        9: (20.0, 20.0),  # topmost
    }
    postprocess = BoxPointPostprocess.from_rule("all10", 10)
    for label, (x, y) in expected.items():
        (det,) = postprocess([{"boxes": torch.tensor([box]), "scores": torch.tensor([0.9]),
                               "labels": torch.tensor([label])}])
        assert det["keypoints"][0, 0].tolist() == [x, y, pytest.approx(0.9)]
        assert det["labels"].tolist() == [label]


def test_postprocess_maps_labels_back_and_suppresses_duplicates_across_classes():
    detections = [{
        # A `1` and a `7` on one digit (IoU 0.9), and a separate `3`; SSD-style labels (digit + 1).
        "boxes": torch.tensor([[0.0, 0.0, 10.0, 20.0], [0.0, 0.0, 10.0, 18.0], [40.0, 40.0, 60.0, 60.0]]),
        "scores": torch.tensor([0.8, 0.9, 0.7]),
        "labels": torch.tensor([2, 8, 4]),
    }]
    (det,) = BoxPointPostprocess.from_rule("seed37", 10, label_offset=1)(detections)
    assert det["labels"].tolist() == [7, 3]
    assert det["scores"].tolist() == pytest.approx([0.9, 0.7])
    assert det["keypoints"][:, 0, :2].tolist() == [[5.0, 9.0], [40.0, 40.0]]  # 7 -> center, 3 -> topleft


def test_keypoint_rcnn_point_is_read_at_the_predicted_class():
    keypoints = torch.zeros(2, 10, 3)
    keypoints[0, 3] = torch.tensor([11.0, 12.0, 5.0])
    keypoints[1, 7] = torch.tensor([70.0, 71.0, 5.0])
    detections = [{"boxes": torch.tensor([[10.0, 10.0, 30.0, 40.0], [60.0, 60.0, 80.0, 90.0]]),
                   "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([4, 8]), "keypoints": keypoints}]
    (det,) = BoxPointPostprocess.from_rule("seed37", 10, label_offset=1, from_keypoints=True)(detections)
    assert det["labels"].tolist() == [3, 7]
    assert det["keypoints"][:, 0, :2].tolist() == [[11.0, 12.0], [70.0, 71.0]]


def test_bad_baseline_settings_name_the_problem():
    with pytest.raises(ValueError, match="unknown baseline 'yolo'"):
        TorchvisionDetector("yolo", num_classes=10, num_keypoints=1)
    with pytest.raises(ValueError, match=r"model.baseline.anchor_sizes for retinanet: expected one list of sizes per FPN level \(3\)"):
        tiny("retinanet", anchor_sizes=[[16.0]])
    with pytest.raises(ValueError, match="model.baseline.anchor_sizes for ssd: expected 4 scales"):
        tiny("ssd", anchor_sizes=[[0.1, 0.2]])


def test_baseline_runs_through_the_trainer_and_rebuilds_from_its_checkpoint(tmp_path, pools):
    overrides = ["model.type=fcos", "model.backbone=test_resnet", "model.fpn_channels=32", "model.head_stride=8",
                 "data.rule=seed37", "data.val_count=2", "data.num_workers=0", "train.batch_size=2",
                 "train.steps=2", "train.val_every=2", "train.log_every=1", "optim.warmup_steps=1"]
    config = load_config(None, overrides)
    detector = build(config)
    assert isinstance(detector.model, TorchvisionDetector) and isinstance(detector.criterion, DetectorLoss)
    scores = Trainer(config, tmp_path / "run", progress=False).fit()
    assert "kpt_AP" in scores and scores["loss"] > 0  # the validation loss too, as for every family
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"loss_classification", "loss_bbox_regression", "loss_bbox_ctrness"} <= set(header)
    rebuilt, loaded_config, _ = detector_from_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert loaded_config.model.type == "fcos" and isinstance(rebuilt.predictor, BaselinePredictor)
    with torch.no_grad():
        assert len(rebuilt.predictor(torch.rand(1, 1, 128, 128))) == 1
