"""The argmax-feature detector: exact crops, exact named points from the head's features, train/eval."""

from __future__ import annotations

import math

import pytest
import torch

from ocrloc.config import load_config
from ocrloc.data.canvas import CanvasGenerator
from ocrloc.data.canvas import canvas_target
from ocrloc.data.points import POINT_NAMES
from ocrloc.data.rules import get_rule
from ocrloc.models.argmax import EXTREME_FEATURES
from ocrloc.models.argmax_detector import ArgmaxCriterion, ArgmaxDetector, ArgmaxPointHead
from ocrloc.models.build import build
from ocrloc.research.oracle import labelled, tell_argmax_head
from tests.helpers import TINY_ARGMAX

# Head feature columns: the 8 extremes, the ink centroid (x, y), the box (x1, y1, x2, y2), soft-argmax.
COLUMN = {name: i for i, name in enumerate(EXTREME_FEATURES)}
COLUMN.update(centroid_x=8, centroid_y=9, box_x1=10, box_y1=11, box_x2=12, box_y2=13)
# The named points (docs/task.md, "Named points") as a pick (or mean) of feature columns, for x and y.
PICK = {
    "topleft": (["left"], ["top"]),
    "center": (["left", "right"], ["top", "bottom"]),
    "centroid": (["centroid_x"], ["centroid_y"]),
    "topmost": (["topmost_x"], ["top"]),
    "bottommost": (["bottommost_x"], ["bottom"]),
    "leftmost": (["left"], ["leftmost_y"]),
    "rightmost": (["right"], ["rightmost_y"]),
}


def picking_head(point_per_class, reach=0.0) -> ArgmaxPointHead:
    """A head whose linear map picks, for each class, the features that are its named point
    (the rule oracle, used here as a probe of the features), with a near-hard cut-off at 0.5
    (ink is >= 128 / 255)."""
    head = ArgmaxPointHead(feature_channels=8, feature_stride=4, crop_size=48, soft_channels=2, point_fit="gradient",
                           reach=reach, num_classes=10, num_keypoints=1)
    tell_argmax_head(head, point_per_class)
    with torch.no_grad():
        head.threshold.log_tau.fill_(math.log(1e-4))
    return head


def test_rule_oracle_weights_pick_the_spec_features():
    head = ArgmaxPointHead(feature_channels=8, soft_channels=2, point_fit="gradient", num_classes=10, num_keypoints=1)
    tell_argmax_head(head, get_rule("all10"))
    expected = torch.zeros_like(head.point.weight)
    for cls, name in get_rule("all10").items():
        for axis, columns in enumerate(PICK[name]):
            for col in columns:
                expected[2 * cls + axis, COLUMN[col]] = 1.0 / len(columns)
    assert torch.equal(head.point.weight, expected)
    assert torch.equal(head.point.bias, torch.zeros(20))
    # Without the oracle the map starts at zero; classes a rule leaves out stay at zero.
    assert not ArgmaxPointHead(8, soft_channels=2, num_classes=10, num_keypoints=1).point.weight.any()
    seed37 = ArgmaxPointHead(8, soft_channels=2, point_fit="gradient", num_classes=10, num_keypoints=1)
    tell_argmax_head(seed37, get_rule("seed37"))
    assert seed37.point.weight[[6, 7, 14, 15]].any() and not seed37.point.weight[[0, 1, 2, 3, 4, 5, 8, 9]].any()


def test_rule_oracle_errors_name_the_class_point_and_setting():
    gradient_head = ArgmaxPointHead(8, point_fit="gradient", num_classes=10, num_keypoints=1)
    with pytest.raises(ValueError, match="class 12 outside 0..9"):
        tell_argmax_head(gradient_head, {12: "center"})
    with pytest.raises(ValueError, match="class 3 wants unknown point 'middle'"):
        tell_argmax_head(gradient_head, {3: "middle"})
    with pytest.raises(ValueError, match="needs point_fit 'gradient'"):
        tell_argmax_head(ArgmaxPointHead(8, num_classes=10, num_keypoints=1), get_rule("all10"))
    with pytest.raises(ValueError, match="model.argmax.point_init = 'ones' is not one of learned, rule"):
        tiny_config("model.argmax.point_init=ones")
    with pytest.raises(ValueError, match="model.argmax.point_init=rule .* needs model.argmax.point_fit=gradient"):
        build(tiny_config("model.argmax.point_init=rule"))
    with pytest.raises(ValueError, match="model.argmax.point_fit = 'lasso' is not one of ridge, gradient"):
        tiny_config("model.argmax.point_fit=lasso")


def test_tables_label_every_told_config_as_the_oracle():
    assert labelled("argmax", tiny_config()) == "argmax"
    told = tiny_config("model.argmax.point_fit=gradient", "model.argmax.point_init=rule")
    assert labelled("argmax_rule_told", told) == "argmax_rule_told (oracle: rule told)"
    study = load_config(None, ["model.type=study", "model.study.head=extremes", "model.study.point_init=rule"])
    assert labelled("14_extremes_canvas_rule_init", study) == "14_extremes_canvas_rule_init (oracle: rule told)"


def test_default_head_learns_and_is_told_nothing():
    head = build(tiny_config()).model.head
    assert head.point_fit == "ridge" and head.readout is not None
    assert not head.point.weight.any() and not head.readout.weight.any()


def test_point_init_rule_takes_the_configured_rule():
    model = build(tiny_config("model.argmax.point_fit=gradient", "model.argmax.point_init=rule", "data.rule=seed37")).model
    reference = ArgmaxPointHead(8, soft_channels=2, point_fit="gradient", num_classes=10, num_keypoints=1)
    tell_argmax_head(reference, get_rule("seed37"))
    assert torch.equal(model.head.point.weight, reference.point.weight)


@pytest.mark.parametrize("point", POINT_NAMES)
def test_head_features_give_the_exact_spec_points_on_real_canvases(pools, point):
    generator = CanvasGenerator("canvas128", "all10", "test", 3, pools["test"])
    head = picking_head({c: point for c in range(10)})
    for index in range(8):
        canvas = generator.generate(index)
        image = torch.from_numpy(canvas.image).float().div(255)[None, None]
        boxes = torch.tensor([[d.bbox[0], d.bbox[1], d.bbox[0] + d.bbox[2], d.bbox[1] + d.bbox[3]]
                              for d in canvas.digits], dtype=torch.float32)
        labels = torch.tensor([d.label for d in canvas.digits])
        with torch.no_grad():
            points = head(image, torch.zeros(1, 8, 32, 32), [boxes], labels)[:, 0]  # the one keypoint
        for digit, predicted in zip(canvas.digits, points.tolist()):
            truth = digit.points[point]
            assert abs(predicted[0] - truth[0]) <= 1e-3 and abs(predicted[1] - truth[1]) <= 1e-3, (
                index, digit.label, predicted, truth)


def test_neighbouring_ink_outside_the_box_margin_is_ignored():
    image = torch.zeros(1, 1, 64, 64)
    image[0, 0, 20:30, 20:26] = 1.0  # the digit: box (20, 20, 26, 30)
    image[0, 0, 10:40, 28:30] = 1.0  # a neighbour 2 px to the right, taller than the digit
    head = picking_head({0: "topleft", 1: "rightmost"})
    box = torch.tensor([[20.0, 20.0, 26.0, 30.0]] * 2)
    with torch.no_grad():
        points = head(image, torch.zeros(1, 8, 16, 16), [box], torch.tensor([0, 1]))[:, 0]
    assert points.tolist() == [[20.0, 20.0], [26.0, 25.0]]


def test_ink_reach_gives_back_a_digit_cut_by_its_box_and_never_a_neighbour():
    image = torch.zeros(1, 1, 64, 64)
    image[0, 0, 20:30, 20:22] = 1.0  # the digit: an L, box (20, 20, 30, 30)
    image[0, 0, 28:30, 20:30] = 1.0
    image[0, 0, 10:40, 32:34] = 1.0  # a neighbour 2 px to the right of the foot, taller than the digit
    # A detected box that lost the foot's last 3 px; 6 px beyond it the neighbour's ink lies in
    # reach, but it is not connected to the digit's.
    cut = torch.tensor([[20.0, 20.0, 27.0, 30.0]] * 2)
    classes = torch.tensor([0, 1])
    features = torch.zeros(1, 8, 16, 16)
    with torch.no_grad():
        without = picking_head({0: "topleft", 1: "rightmost"}, reach=0.0)(image, features, [cut], classes)[:, 0]
        reach = picking_head({0: "topleft", 1: "rightmost"}, reach=6.0)(image, features, [cut], classes)[:, 0]
    assert without[1].tolist() == [28.0, 29.0]  # the mask stops 1 px past the cut
    assert reach.tolist() == [[20.0, 20.0], [30.0, 29.0]]  # the foot is back, the neighbour is not
    # A box that is right is unchanged by the reach.
    exact = torch.tensor([[20.0, 20.0, 30.0, 30.0]] * 2)
    with torch.no_grad():
        assert torch.equal(picking_head({0: "topleft", 1: "rightmost"}, reach=6.0)(image, features, [exact], classes),
                           picking_head({0: "topleft", 1: "rightmost"}, reach=0.0)(image, features, [exact], classes))


def tiny_config(*extra):
    return load_config(None, [*TINY_ARGMAX, *extra])


def test_train_mode_gives_head_points_for_every_target_and_a_finite_loss(pools):
    torch.manual_seed(0)
    detector = build(tiny_config())
    model, criterion = detector.model, detector.criterion
    assert isinstance(model, ArgmaxDetector) and isinstance(criterion, ArgmaxCriterion)
    generator = CanvasGenerator("canvas128", "all10", "train", 0, pools["train"])
    canvases = [generator.generate(i) for i in range(2)]
    images = torch.stack([torch.from_numpy(c.image).float().div(255)[None] for c in canvases])
    targets = [canvas_target(c, "all10", i + 1) for i, c in enumerate(canvases)]
    outputs = model.train()(images, targets)
    n = sum(len(t["labels"]) for t in targets)
    assert outputs["argmax_points"].shape == (n, 1, 2) and outputs["crop_logits"].shape == (n, 10)
    # The closed-form fit saw this batch's classes (and only those) during the forward pass.
    seen = torch.cat([t["labels"] for t in targets]).unique()
    fitted = model.head.readout.weight.flatten(1).abs().sum(dim=1) > 0
    assert fitted[seen].all() and fitted.sum() == len(seen)
    loss, terms = criterion(outputs, targets)
    assert set(terms) == set(criterion.loss_terms) and torch.isfinite(loss)
    assert terms["crop_class"] > 0
    loss.backward()
    # Two canvases hold fewer digits per class than the map has features, so the closed-form fit
    # interpolates them and the L1 correction gets no gradient yet; the parameters are in the graph.
    assert model.head.point.weight.grad is not None and model.head.threshold.threshold.grad is not None
    assert model.classifier.classifier.weight.grad.abs().sum() > 0
    assert "head.readout.weight" in model.state_dict()
    with torch.no_grad():
        (det,) = detector.eval().predictor(images[:1])
    assert det["keypoints"].shape == (det["boxes"].shape[0], 1, 3)


def test_outputs_are_the_same_kind_in_train_and_eval_mode(pools):
    """Eval mode gives the head's points at the true boxes too (a validation loss), without the
    training mode's jitter and closed-form fit."""
    torch.manual_seed(0)
    detector = build(tiny_config())
    generator = CanvasGenerator("canvas128", "all10", "val", 0, pools["val"])
    canvas = generator.generate(0)
    images = torch.from_numpy(canvas.image).float().div(255)[None, None]
    targets = [canvas_target(canvas, "all10", 1)]
    with torch.no_grad():
        train = detector.model.train()(images, targets)
        readout = detector.model.head.readout.weight.clone()
        evaluated = detector.model.eval()(images, targets)
        again = detector.model(images, targets)
    assert set(train) == set(evaluated) >= {"heatmap", "features", "argmax_points", "crop_logits",
                                            "point_maps", "map_points"}
    assert torch.equal(readout, detector.model.head.readout.weight)  # no fit in eval mode
    assert torch.equal(evaluated["argmax_points"], again["argmax_points"])  # no jitter in eval mode
    assert set(detector.model(images)) == set(evaluated) - {"argmax_points", "crop_logits", "point_maps", "map_points",
                                                                     "map_visible"}
    loss, _ = detector.criterion(evaluated, targets)
    assert torch.isfinite(loss)


def test_crop_size_must_be_a_multiple_of_the_feature_stride():
    with pytest.raises(ValueError, match="crop_size 50 must be a multiple of the feature stride 4"):
        ArgmaxPointHead(8, 4, crop_size=50, num_classes=10, num_keypoints=1)


def test_detections_carry_the_ink_box_and_one_detection_per_character():
    """Issue 25: the box given out is the ink box the head measured (exact where the dense box is
    loose, cut or shifted), the dense box where the window holds no ink, and two dense boxes on one
    character's ink are one detection; without ``ink_boxes`` (saved configs from before) the
    dense boxes go out unchanged."""
    torch.manual_seed(0)
    image = torch.zeros(1, 1, 64, 64)
    image[0, 0, 20:30, 20:22] = 1.0  # an L: ink box (20, 20, 30, 30)
    image[0, 0, 28:30, 20:30] = 1.0
    image[0, 0, 40:50, 44:47] = 1.0  # a bar: ink box (44, 40, 47, 50)
    dense = torch.tensor([[19.0, 18.0, 31.5, 31.0],  # the L, loose
                          [21.0, 21.0, 27.0, 29.0],  # the L again, cut: ink box (20, 20, 28, 30), IoU 0.8
                          [43.0, 41.0, 48.0, 49.0],  # the bar, a pixel off
                          [2.0, 50.0, 10.0, 60.0]])  # blank canvas
    detections = [{"boxes": dense, "scores": torch.tensor([0.9, 0.5, 0.8, 0.3]), "labels": torch.tensor([1, 1, 2, 3]),
                   "keypoints": torch.zeros(4, 1, 3)}]
    detector = build(tiny_config()).model.eval()
    detector.classifier = None  # the dense labels name them: the two L boxes are one class
    features = torch.zeros(1, 8, 16, 16)
    with torch.no_grad():
        (inked,) = detector.detect(image, features, detections)
        # Named two classes, the two L boxes are two detections (a misnamed peak must not hide a
        # rightly named one); the suppression is per class.
        relabelled = [dict(detections[0], labels=torch.tensor([1, 4, 2, 3]))]
        (two_classes,) = detector.detect(image, features, relabelled)
        detector.ink_boxes = False
        (dense_out,) = detector.detect(image, features, detections)
    assert sorted(inked["boxes"].tolist()) == [[2.0, 50.0, 10.0, 60.0], [20.0, 20.0, 30.0, 30.0], [44.0, 40.0, 47.0, 50.0]]
    assert sorted(two_classes["boxes"].tolist()) == [[2.0, 50.0, 10.0, 60.0], [20.0, 20.0, 28.0, 30.0],
                                                     [20.0, 20.0, 30.0, 30.0], [44.0, 40.0, 47.0, 50.0]]
    assert inked["keypoints"].shape == (3, 1, 3) and bool((inked["scores"][1:] <= inked["scores"][:-1]).all())
    assert sorted(dense_out["boxes"].tolist()) == sorted(dense.tolist())
    # A saved config without the key builds the model it trained: dense boxes.
    assert load_config(None, []).model.argmax.ink_boxes
    from ocrloc.config import ADDED_KEYS

    assert ADDED_KEYS["model.argmax.ink_boxes"] is False


def test_duplicate_suppression_keeps_the_first_of_overlapping_boxes_per_image_and_class():
    from ocrloc.models.argmax_detector import _duplicates

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 6.0],
                          [0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]])
    scores = torch.tensor([0.5, 0.5, 0.9, 0.1, 0.2])
    image = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0])
    labels = torch.zeros(5, dtype=torch.long)
    # IoU(0, 2) = 0.6 exactly: not above 0.6, so both stay; 1 ties 0 on score and comes after it;
    # 3 is another image's; 4 overlaps nothing.
    assert _duplicates(boxes, scores, image, labels, 0.6).tolist() == [False, True, False, False, False]
    assert _duplicates(boxes, scores, image, labels, 0.5).tolist() == [True, True, False, False, False]
    # Another class is no duplicate.
    assert _duplicates(boxes, scores, image, torch.tensor([0, 1, 0, 0, 0]), 0.6).tolist() == [False] * 5


def test_the_class_adds_the_log_probabilities_of_the_dense_and_the_ink_box_crops():
    """Issue 25: with ``classify_ink_box`` the crop classifier reads two views of each detection,
    the dense box's crop and the ink box's, and names the class whose summed log-probability is
    highest; the probability given out (what the score is calibrated on) is that class's under the
    renormalised product. Without it (saved configs from before), the dense box's crop alone."""
    torch.manual_seed(0)
    image = torch.zeros(1, 1, 64, 64)
    image[0, 0, 20:30, 20:22] = 1.0  # an L: ink box (20, 20, 30, 30)
    image[0, 0, 28:30, 20:30] = 1.0
    dense = torch.tensor([[17.0, 16.0, 33.0, 31.0], [21.0, 21.0, 27.0, 29.0]])  # loose, cut
    rois = torch.cat([torch.zeros(2, 1), dense], dim=1)
    detector = build(tiny_config()).model.eval()
    assert detector.classify_ink_box
    classifier = detector.classifier
    with torch.no_grad():
        classifier.classifier.weight.normal_(0.0, 1.0)  # views that disagree, neither sure
        features = torch.zeros(1, 8, 16, 16)
        _, _, _, _, kept, probability = detector.detect_rois(image, features, rois, torch.tensor([0.9, 0.8]),
                                                             torch.zeros(2, dtype=torch.long), 0.6)

        def log_probability(boxes):
            return classifier(image, [boxes]).log_softmax(dim=1)

        ink = torch.tensor([[20.0, 20.0, 30.0, 30.0], [20.0, 20.0, 30.0, 30.0]])  # both measure the L's ink
        both = (log_probability(dense) + log_probability(ink)).log_softmax(dim=1).exp()
        assert torch.allclose(probability, both.max(dim=1).values[kept], atol=1e-5)
        detector.classify_ink_box = False
        _, _, _, _, _, alone = detector.detect_rois(image, features, rois, torch.tensor([0.9, 0.8]),
                                                    torch.zeros(2, dtype=torch.long), 0.6)
        assert torch.allclose(alone[:1], log_probability(dense).exp().max(dim=1).values[:1], atol=1e-5)
        assert 0.1 < float(probability[0]) < 0.9 and abs(float(alone[0] - probability[0])) > 1e-3
    from ocrloc.config import ADDED_KEYS

    assert ADDED_KEYS["model.argmax.classify_ink_box"] is False
