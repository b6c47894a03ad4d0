"""The one predict loop: padding to the predictor's rule, devices, modes, COCO results."""

from __future__ import annotations

from typing import Dict, List

import pytest
import torch

from ocrloc.engine.inference import (detections_to_results, iterate_predictions, pad_to_multiple, pad_to_rule,
                                     predict_results, to_device)
from ocrloc.models.family import PredictorModule


class ShapeReporter(PredictorModule):
    """One detection per image whose box is the input's padded extent, so tests can read what it saw."""

    def __init__(self, size_divisible: int = 32, min_size: int = 64, max_size: int = 0) -> None:
        super().__init__(size_divisible, min_size, max_size)
        self.modes: List[bool] = []

    def forward(self, images: torch.Tensor) -> List[Dict[str, torch.Tensor]]:
        self.modes.append(self.training)
        h, w = images.shape[-2:]
        out = []
        for b in range(images.shape[0]):
            score = images[b].mean().view(1)
            out.append({"boxes": torch.tensor([[0.0, 0.0, float(w), float(h)]]), "scores": score,
                        "labels": torch.tensor([b]), "keypoints": torch.tensor([[[1.0, 2.0, 0.5]]])})
        return out


def test_pad_to_multiple_and_to_the_minimum_keeps_coordinates():
    x = torch.ones(1, 1, 70, 33)
    padded = pad_to_multiple(x, 32, min_size=64)
    assert padded.shape[-2:] == (96, 64)
    assert torch.equal(padded[..., :70, :33], x) and padded[..., 70:, :].sum() == 0 and padded[..., 33:].sum() == 0
    assert pad_to_multiple(torch.ones(1, 1, 64, 64), 32, 64).shape[-2:] == (64, 64)


def test_pad_to_rule_refuses_images_larger_than_the_predictor_takes():
    assert pad_to_rule(torch.ones(1, 1, 20, 30), ShapeReporter(4, 32, 32)).shape[-2:] == (32, 32)
    with pytest.raises(ValueError, match="images of 40 x 30 px are larger than this model takes"):
        pad_to_rule(torch.ones(1, 1, 40, 30), ShapeReporter(4, 32, 32))


def test_loop_pads_runs_in_eval_mode_and_restores_the_mode():
    predictor = ShapeReporter().train()
    batches = [(torch.ones(2, 1, 70, 40), [{"image_id": 7}, {"image_id": 8}]),
               (torch.zeros(1, 1, 64, 64), [{"image_id": 9}])]
    seen = [(images.shape, [t["image_id"] for t in targets], d[0]["boxes"][0, 2:].tolist())
            for images, targets, d in iterate_predictions(predictor, batches, torch.device("cpu"))]
    assert seen == [((2, 1, 96, 64), [7, 8], [64.0, 96.0]), ((1, 1, 64, 64), [9], [64.0, 64.0])]
    assert predictor.modes == [False, False] and predictor.training


def test_predict_results_are_coco_results_with_the_targets_image_ids():
    batches = [(torch.full((2, 1, 64, 64), 0.25), [{"image_id": 3}, {"image_id": 5}])]
    results = predict_results(ShapeReporter(), batches, torch.device("cpu"))
    assert results == [
        {"image_id": 3, "category_id": 0, "bbox": [0.0, 0.0, 64.0, 64.0], "score": 0.25, "keypoints": [1.0, 2.0, 0.25]},
        {"image_id": 5, "category_id": 1, "bbox": [0.0, 0.0, 64.0, 64.0], "score": 0.25, "keypoints": [1.0, 2.0, 0.25]},
    ]
    det = {"boxes": torch.tensor([[1.0, 2.0, 4.0, 8.0]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([3]),
           "keypoints": torch.tensor([[[2.0, 3.0, 0.5]]])}
    assert detections_to_results([det], [11])[0]["bbox"] == [1.0, 2.0, 3.0, 6.0]


def test_to_device_moves_every_target_tensor_and_keeps_other_values():
    images, targets = to_device(torch.zeros(1, 1, 4, 4), [{"boxes": torch.zeros(0, 4), "image_id": 3}],
                                torch.device("meta"))
    assert images.device.type == "meta" and targets[0]["boxes"].device.type == "meta" and targets[0]["image_id"] == 3
