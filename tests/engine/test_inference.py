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
    with pytest.raises(ValueError, match=r"images of 40 x 30 px \(padded: 40 x 32\) are larger than this model takes "
                                         r"\(at most 32 x 32\)"):
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


class ConvThenDecode(PredictorModule):
    """A convolution (autocast runs it in bf16) whose output a decoder reads, as the families'
    predictors do; records the dtype the convolution produced."""

    def __init__(self) -> None:
        super().__init__(32, 64)
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)
        self.conv_dtypes: List[torch.dtype] = []

    def forward(self, images: torch.Tensor) -> List[Dict[str, torch.Tensor]]:
        raw = self.conv(images)
        self.conv_dtypes.append(raw.dtype)
        score = raw.flatten(1).amax(dim=1)
        return [{"boxes": torch.zeros(1, 4), "scores": score[b:b + 1], "labels": torch.tensor([0]),
                 "keypoints": raw.new_zeros(1, 1, 3)} for b in range(images.shape[0])]


def test_amp_runs_the_predictor_in_bf16_and_hands_back_fp32_detections():
    torch.manual_seed(0)
    predictor = ConvThenDecode()
    batches = [(torch.rand(2, 1, 64, 64), [{"image_id": 1}, {"image_id": 2}])]
    (_, _, plain), = iterate_predictions(predictor, batches, torch.device("cpu"))
    (_, _, fast), = iterate_predictions(predictor, batches, torch.device("cpu"), amp=True)
    assert predictor.conv_dtypes == [torch.float32, torch.bfloat16]
    assert [d["scores"].dtype for d in fast] == [torch.float32, torch.float32]
    assert [d["keypoints"].dtype for d in fast] == [torch.float32, torch.float32]
    for a, b in zip(plain, fast):  # bf16 keeps 8 bits of mantissa: about 1% on a score near 1
        assert torch.allclose(a["scores"], b["scores"], rtol=0.02, atol=0.02)


def test_centernet_decoder_reads_bf16_outputs_in_fp32():
    # A bf16 coordinate near 100 px moves in steps of 0.5 px: the decoder must cast before adding.
    from ocrloc.models.centernet_decode import CenterNetDecoder

    torch.manual_seed(0)
    outputs = {"heatmap": torch.randn(1, 2, 32, 32) * 3, "size": torch.rand(1, 2, 32, 32) * 4,
               "offset": torch.rand(1, 2, 32, 32), "point": torch.rand(1, 4, 32, 32)}
    outputs_bf16 = {k: v.bfloat16() for k, v in outputs.items()}
    decoder = CenterNetDecoder(stride=4, num_classes=2, num_keypoints=1)
    expected = decoder({k: v.float() for k, v in outputs_bf16.items()})[0]
    got = decoder(outputs_bf16)[0]
    assert got["keypoints"].shape[0] > 0 and got["keypoints"].dtype == torch.float32
    for key in ("boxes", "scores", "labels", "keypoints"):
        assert torch.equal(got[key], expected[key]), key
