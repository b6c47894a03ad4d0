"""The crop classifier: masked, size-normalised crops; logits per box; it learns digits."""

from __future__ import annotations

import pytest
import torch

from ocrloc.data.canvas import CanvasGenerator
from ocrloc.data.datasets import SyntheticCanvasDataset, collate_detection
from ocrloc.models.crop_classifier import CropClassifier


def test_crop_is_the_box_at_a_fixed_scale_with_neighbours_masked_out():
    image = torch.zeros(1, 1, 64, 64)
    image[0, 0, 20:30, 22:26] = 1.0  # the digit: box (22, 20, 26, 30), 4 x 10 px
    image[0, 0, 18:32, 29:31] = 1.0  # a neighbour 3 px to the right
    classifier = CropClassifier(10, size=28, context=1.4, box_margin=1.0)
    box = torch.tensor([[22.0, 20.0, 26.0, 30.0]])
    crop = classifier.crops(image, [box])[0, 0]
    # The window is 14 px square around the box center (24, 25): 2 crop px per canvas px.
    assert crop.shape == (28, 28)
    assert crop[:, 14 + 2 * 4:].abs().sum() == 0  # the neighbour (canvas x >= 29) is gone
    # The digit covers crop rows 4-23 and columns 10-17 (bilinear samples soften its outer ring).
    assert crop[5:23, 11:17].min() == 1.0 and crop[:3].abs().sum() == 0 and crop[:, :9].abs().sum() == 0
    # The same digit twice as large gives the same crop: scale is normalised.
    big = torch.nn.functional.interpolate(image[:, :, :32, :32], scale_factor=2, mode="nearest")
    big_crop = classifier.crops(big, [box * 2])[0, 0]
    assert big_crop[5:23, 11:17].min() == 1.0 and (big_crop - crop).abs().max() < 0.25


def test_logits_per_box_and_no_boxes():
    classifier = CropClassifier(7, size=16, width=4)
    images = torch.rand(2, 1, 64, 64)
    boxes = [torch.tensor([[1.0, 2.0, 20.0, 30.0], [30.0, 30.0, 40.0, 60.0]]), torch.tensor([[5.0, 5.0, 9.0, 9.0]])]
    assert classifier(images, boxes).shape == (3, 7)
    assert classifier(images, [torch.zeros(0, 4), torch.zeros(0, 4)]).shape == (0, 7)
    with pytest.raises(ValueError, match="size 30 must be a multiple of 4"):
        CropClassifier(10, size=30)


def test_the_argmax_config_sets_the_classifier_width():
    from ocrloc.config import load_config
    from ocrloc.models.build import build
    from tests.helpers import TINY_DETECTOR

    widths = []
    for width in (32, 16):
        config = load_config(None, [*TINY_DETECTOR, "model.type=argmax", f"model.argmax.classifier_width={width}"])
        classifier = build(config).model.classifier
        widths.append([m.out_channels for m in classifier.features.modules() if isinstance(m, torch.nn.Conv2d)])
    assert widths == [[32, 32, 64, 64, 128], [16, 16, 32, 32, 64]]


@pytest.mark.slow  # a real training of the crop classifier on MNIST canvases
def test_it_learns_mnist_digits_from_canvas_boxes(pools):
    torch.manual_seed(0)
    generator = CanvasGenerator("canvas128", "all10", "train", 0, pools["train"])
    images, targets = collate_detection([SyntheticCanvasDataset(generator, 24)[i] for i in range(24)])
    boxes = [t["boxes"] for t in targets]
    labels = torch.cat([t["labels"] for t in targets])
    classifier = CropClassifier(10, width=8)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=3e-3)
    for _ in range(80):
        loss = torch.nn.functional.cross_entropy(classifier(images, boxes), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():  # train mode: BatchNorm's running statistics need more than 80 steps to settle
        accuracy = (classifier(images, boxes).argmax(dim=1) == labels).float().mean()
    assert accuracy >= 0.95  # it fits the training crops: the gradient reaches a working classifier
