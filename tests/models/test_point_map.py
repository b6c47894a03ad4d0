"""The point map (ocrloc.models.point_map) and the argmax head's choice between its two candidates."""

from __future__ import annotations

import pytest
import torch

from ocrloc.config import config_from_dict, config_to_dict, load_config
from ocrloc.models.argmax_detector import ArgmaxPointHead
from ocrloc.models.point_map import MAP_COORDINATES, PointMapHead, coordinate_channels, map_loss, map_targets


def test_coordinate_channels_are_measured_from_the_ink_box():
    channels = coordinate_channels(torch.tensor([[10.0, 12.0, 30.0, 40.0]]), 48)
    assert channels.shape == (1, len(MAP_COORDINATES), 48, 48)
    at = dict(zip(MAP_COORDINATES, channels[0, :, 12, 20].tolist()))  # pixel center (20.5, 12.5)
    x, y, w, h = 10.5, 0.5, 20.0, 28.0  # pixels
    expected = {"X": x, "Y": y, "u": 48 * 10.5 / 20, "v": 48 * 0.5 / 28, "W": w, "H": h, "X^2": x * x / 48,
                "Y^2": y * y / 48, "XW": x * w / 48, "YH": y * h / 48, "XH": x * h / 48, "YW": y * w / 48}
    assert at == pytest.approx(expected, abs=1e-6)


def test_map_targets_name_the_cell_and_the_offset():
    index, offset, inside = map_targets(torch.tensor([[3.5, 4.5], [10.0, 0.25], [-0.2, 3.0], [47.9, 48.0]]), 48)
    assert index[:2].tolist() == [4 * 48 + 3, 0 * 48 + 10]
    assert torch.allclose(offset[:2], torch.tensor([[0.0, 0.0], [-0.5, -0.25]]))
    assert inside.tolist() == [True, True, False, False]


def test_decode_reads_the_arg_max_cell_plus_its_offset_and_the_loss_agrees():
    head = PointMapHead(3, num_slots=2, size=8)
    maps = torch.zeros(1, 2, 3, 64)
    maps[0, 0, 0, 2 * 8 + 5] = 9.0  # row 2, column 5
    maps[0, 0, 1:, 2 * 8 + 5] = torch.tensor([0.25, -0.1])
    maps[0, 1, 0, 7] = 9.0  # row 0, column 7
    points = head.decode(maps)
    assert torch.allclose(points, torch.tensor([[[5.75, 2.4], [7.5, 0.5]]]))
    ce, offset = map_loss(maps, points, torch.tensor([[True, True]]))
    assert ce.item() < 0.01 and offset.item() < 1e-6
    # A keypoint left out (v = 0) or outside the window does not count.
    ce_none, _ = map_loss(maps, torch.tensor([[[5.75, 2.4], [-3.0, 0.5]]]), torch.tensor([[False, True]]))
    assert ce_none.item() == 0.0


def test_forward_gives_one_score_and_offset_map_per_keypoint_of_the_row_slot():
    torch.manual_seed(0)
    head = PointMapHead(3, num_slots=6, size=16, hidden=8, slot_hidden=8)
    inputs = torch.rand(4, 3, 16, 16)
    ink_box = torch.tensor([[2.0, 3.0, 12.0, 14.0]]).repeat(4, 1)
    slots = torch.tensor([[0, 1], [2, 3], [4, 5], [0, 1]])
    maps = head(inputs, ink_box, slots)
    assert maps.shape == (4, 2, 3, 256)
    # Rows 0 and 3 differ in input only: same slots, different maps; a row does not see another.
    alone = head(inputs[1:2], ink_box[1:2], slots[1:2])
    assert torch.allclose(alone, maps[1:2], atol=1e-6)
    assert head(inputs[:0], ink_box[:0], slots[:0]).shape == (0, 2, 3, 256)


def test_each_slot_takes_the_candidate_with_the_lower_running_error():
    head = ArgmaxPointHead(8, soft_channels=2, point_map=True, num_classes=3, num_keypoints=1)
    assert not head.uses_map().any()  # nothing trained: the closed-form read-out everywhere
    labels = torch.tensor([0, 0, 1, 1])
    errors = torch.tensor([[[0.8, 0.0]], [[1.2, 1.0]], [[0.01, 0.9]], [[0.02, 0.0]]])  # [N, K, 2]
    head.update_choice(labels, errors, torch.ones(4, 1, dtype=torch.bool))
    assert head.uses_map().tolist() == [True, False, False]
    # Errors count at most 3 px: one wild miss of the map does not outvote many exact points.
    for _ in range(3):
        head.update_choice(torch.tensor([2] * 10), torch.tensor([[[0.6, 0.0]]] * 9 + [[[0.6, 40.0]]]),
                           torch.ones(10, 1, dtype=torch.bool))
    assert head.uses_map()[2]
    # A keypoint left out (v = 0) changes nothing.
    before = head.choice_error.clone()
    head.update_choice(torch.tensor([0]), torch.tensor([[[0.0, 9.0]]]), torch.zeros(1, 1, dtype=torch.bool))
    assert torch.allclose(head.choice_error, before * head.choice_decay)


def test_a_saved_config_from_before_the_point_map_loads_without_one():
    saved = config_to_dict(load_config("quickstart", []))
    assert saved["model"]["argmax"]["point_map"] is True  # today's default
    del saved["model"]["argmax"]["point_map"]
    assert config_from_dict(saved).model.argmax.point_map is False
    centernet = config_to_dict(load_config(None, ["model.type=centernet"]))
    del centernet["model"]["argmax"]["point_map"]
    assert config_from_dict(centernet).model.type == "centernet"  # no argmax key forced on it
