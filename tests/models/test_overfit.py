"""A few hundred steps on one repeated batch must find that batch's digits and points."""

from __future__ import annotations

import pytest
import torch

from ocrloc.data.canvas import CanvasGenerator, CanvasPreset
from ocrloc.data.datasets import SyntheticCanvasDataset, collate_detection
from ocrloc.models.centernet import CenterNetDetector
from ocrloc.models.centernet_loss import CenterNetCriterion
from ocrloc.models.centernet_decode import CenterNetDecoder

pytestmark = pytest.mark.slow  # 250 optimizer steps on one batch


def test_overfitting_one_batch_finds_its_points(pools):
    torch.manual_seed(0)
    preset = CanvasPreset("tiny", 64, 64, digits_per_canvas=(1, 2), digit_size=(20, 26))
    data = SyntheticCanvasDataset(CanvasGenerator(preset, "seed37", "train", 0, pools["train"]), 2)
    images, targets = collate_detection([data[0], data[1]])
    model = CenterNetDetector("test_resnet", fpn_channels=32, head_channels=32, num_classes=10, num_keypoints=1)
    criterion = CenterNetCriterion(4, {"size": 0.1}, num_classes=10, num_keypoints=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(250):
        loss, _ = criterion(model(images), targets)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 10
    with torch.no_grad():  # BatchNorm in train mode: the batch statistics the model was fitted with
        detections = CenterNetDecoder(4, score_threshold=0.3, num_classes=10, num_keypoints=1)(model(images))
    for det, tgt in zip(detections, targets):
        assert sorted(det["labels"].tolist()) == sorted(tgt["labels"].tolist())
        for label, point in zip(tgt["labels"], tgt["keypoints"][:, 0, :2]):
            same = det["labels"] == label
            error = (det["keypoints"][same, 0, :2] - point).norm(dim=1).min()
            assert error < 1.5, (int(label), float(error))
