"""Issue 25: the argmax detector's score, calibrated on val so that a threshold means a fraction correct."""

from __future__ import annotations

import torch

from ocrloc.config import ADDED_KEYS, load_config
from ocrloc.engine.calibration import correct_detections, recalibrate_scores
from ocrloc.evaluation.matching import POINT_MATCH_PX
from ocrloc.models.build import build
from tests.helpers import TINY_ARGMAX


def tiny_argmax(*extra):
    return build(load_config(None, [*TINY_ARGMAX, *extra])).model


def _detections(labels, points, scores):
    points = torch.tensor(points, dtype=torch.float32).view(-1, 1, 2)
    scores = torch.tensor(scores)
    return {"boxes": torch.zeros(len(labels), 4), "scores": scores, "labels": torch.tensor(labels),
            "keypoints": torch.cat([points, scores[:, None, None]], dim=2), "dense_scores": scores.clone(),
            "class_scores": torch.ones(len(labels))}


def test_a_detection_is_correct_with_its_class_and_points_within_3_px_once_per_object():
    target = {"labels": torch.tensor([3, 5]), "keypoints": torch.tensor([[[10.0, 10.0, 2.0]], [[40.0, 40.0, 2.0]]])}
    det = _detections([3, 3, 5, 7], [[12.0, 12.0], [10.0, 10.0], [40.0, 43.5], [40.0, 40.0]], [0.9, 0.8, 0.7, 0.6])
    # 2.83 px: right; the same object again: a duplicate; 3.5 px off; the wrong class.
    assert POINT_MATCH_PX == 3.0
    assert correct_detections(det, target).tolist() == [True, False, False, False]
    assert correct_detections(det, {"labels": torch.zeros(0, dtype=torch.long),
                                    "keypoints": torch.zeros(0, 1, 3)}).tolist() == [False] * 4


def test_the_fitted_score_puts_right_detections_near_1_and_wrong_ones_near_0():
    model = tiny_argmax()
    generator = torch.Generator().manual_seed(0)
    correct = torch.rand(400, generator=generator) < 0.7
    # Right detections: dense scores around 0.6 (CenterNet's peaks), sure classes; wrong ones lower, unsure.
    dense = torch.where(correct, 0.45 + 0.3 * torch.rand(400, generator=generator), 0.05 + 0.3 * torch.rand(400, generator=generator))
    probability = torch.where(correct, 0.97 + 0.03 * torch.rand(400, generator=generator), 0.3 + 0.5 * torch.rand(400, generator=generator))
    raw = model.calibrated_score(dense, probability)
    assert torch.allclose(raw, dense * probability)  # before a fit: the product
    assert (raw[correct] < 0.5).float().mean() > 0.1  # which a threshold of 0.5 cuts into
    model.fit_score_calibration(dense, probability, correct)
    assert float(model.score_calibrated) == 1.0
    fitted = model.calibrated_score(dense, probability)
    assert fitted[correct].median() > 0.95 and fitted[~correct].median() < 0.05
    assert ((fitted >= 0.5) == correct).float().mean() > 0.98
    # Nothing to separate: left as it was.
    before = model.score_calibration.clone()
    model.fit_score_calibration(dense, probability, torch.ones(400, dtype=torch.bool))
    assert torch.equal(before, model.score_calibration)


def test_recalibration_rescores_and_reorders_the_validation_detections():
    model = tiny_argmax()
    target = {"labels": torch.tensor([1, 2]), "keypoints": torch.tensor([[[10.0, 10.0, 2.0]], [[30.0, 30.0, 2.0]]])}
    detections = _detections([9, 1, 2], [[50.0, 50.0], [10.0, 10.0], [30.0, 30.0]], [0.9, 0.5, 0.4])
    detections["class_scores"] = torch.tensor([0.4, 0.99, 0.98])
    recalibrate_scores(model, [([target], [detections])])
    assert float(model.score_calibrated) == 1.0
    assert detections["labels"].tolist() == [1, 2, 9]  # the right two first now
    assert torch.equal(detections["keypoints"][:, 0, 2], detections["scores"])
    assert bool((detections["scores"][1:] <= detections["scores"][:-1]).all())


def test_saved_configs_from_before_keep_the_product_and_their_checkpoints_load():
    assert ADDED_KEYS["model.argmax.calibrate_score"] is False
    old = tiny_argmax("model.argmax.calibrate_score=false")
    assert "score_calibration" not in old.state_dict() and "score_calibrated" not in old.state_dict()
    new = tiny_argmax()
    assert {"score_calibration", "score_calibrated"} <= set(new.state_dict())
