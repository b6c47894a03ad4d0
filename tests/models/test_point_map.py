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
    assert torch.equal(head.choice_error, before)


def test_a_map_no_longer_trained_keeps_its_error_and_never_takes_over():
    head = ArgmaxPointHead(8, soft_channels=2, point_map=True, map_tolerance=0.1, num_classes=2, num_keypoints=1)
    visible = torch.ones(2, 1, dtype=torch.bool)
    head.update_choice(torch.tensor([0, 1]), torch.tensor([[[0.01, 2.0]], [[0.5, 0.3]]]), visible)
    map_error = head.choice_error[0, 1].item()
    # Class 0's closed form is exact, so its map trains no more: for 400 steps only the
    # closed form is measured there (class 1 is absent and decays not at all).
    only_closed_form = torch.tensor([[[True, False]]])
    for _ in range(400):
        head.update_choice(torch.tensor([0]), torch.tensor([[[0.01, 0.0]]]), only_closed_form)
    assert head.choice_error[0, 1].item() == map_error and head.choice_count[0, 1].item() == 1.0
    assert head.choice_count[1].tolist() == [1.0, 1.0]
    assert head.uses_map().tolist() == [False, True]  # before the fix, class 0 went to the untrained map


def test_a_saved_config_from_before_the_point_map_loads_without_one():
    saved = config_to_dict(load_config("quickstart", []))
    assert saved["model"]["argmax"]["point_map"] is True  # today's default
    del saved["model"]["argmax"]["point_map"]
    assert config_from_dict(saved).model.argmax.point_map is False
    centernet = config_to_dict(load_config(None, ["model.type=centernet"]))
    del centernet["model"]["argmax"]["point_map"]
    assert config_from_dict(centernet).model.type == "centernet"  # no argmax key forced on it


def test_only_characters_whose_slot_the_closed_form_misses_train_the_point_map():
    head = ArgmaxPointHead(8, soft_channels=2, point_map=True, map_tolerance=0.1, num_classes=4, num_keypoints=1)
    errors = torch.tensor([[[0.02, 0.5]], [[0.9, 0.3]], [[0.08, 0.4]]])  # classes 0, 1, 2 (3 never seen)
    head.update_choice(torch.tensor([0, 1, 2]), errors, torch.ones(3, 1, dtype=torch.bool))
    labels = torch.tensor([0, 1, 2, 3, 1, 0])
    visible = torch.tensor([[True], [True], [True], [True], [False], [True]])
    # Class 0 and 2 are within 0.1 px; class 1 is not, class 3 is unmeasured; row 4 has no annotated point.
    assert head.map_rows(labels, visible).tolist() == [1, 3]
    # The running error decides: class 2 drifting above the tolerance brings its characters back.
    head.update_choice(torch.tensor([2]), torch.tensor([[[0.5, 0.4]]]), torch.ones(1, 1, dtype=torch.bool))
    assert head.map_rows(labels, visible).tolist() == [1, 2, 3]
    head.map_tolerance = 0.0  # every character
    assert head.map_rows(labels, visible).tolist() == [0, 1, 2, 3, 4, 5]


def test_a_character_that_skips_the_map_measures_the_closed_form_alone():
    head = ArgmaxPointHead(8, soft_channels=2, point_map=True, num_classes=2, num_keypoints=1)
    errors = torch.tensor([[[0.02, 0.0]], [[0.9, 0.1]]])
    measured = torch.tensor([[[True, False]], [[True, True]]])  # row 0 skipped the map
    head.update_choice(torch.tensor([0, 1]), errors, measured)
    assert head.choice_count.tolist() == [[1.0, 0.0], [1.0, 1.0]]
    assert torch.allclose(head.choice_error, torch.tensor([[0.02, 0.0], [0.9, 0.1]]))
    # Class 0's map was never measured, so its 0 error does not win it the slot.
    assert head.uses_map().tolist() == [False, True]


def test_a_checkpoint_with_one_count_per_slot_loads_into_a_count_per_candidate():
    head = ArgmaxPointHead(8, soft_channels=2, point_map=True, num_classes=2, num_keypoints=1)
    old = head.state_dict()
    old["choice_error"] = torch.tensor([[0.5, 0.1], [0.2, 4.0]])
    old["choice_count"] = torch.tensor([10.0, 20.0])  # the layout before the candidates were counted apart
    head.load_state_dict(old)
    assert head.choice_count.tolist() == [[10.0, 10.0], [20.0, 20.0]]
    assert head.uses_map().tolist() == [True, False]


def test_a_batch_the_closed_form_places_exactly_trains_no_map_and_still_backpropagates():
    from tests.helpers import TINY_DETECTOR
    from ocrloc.models.build import build

    torch.manual_seed(0)
    detector = build(load_config(None, [*TINY_DETECTOR, "model.type=argmax", "model.argmax.argmax_channels=2",
                                        "model.argmax.map_channels=8", "model.argmax.map_tolerance=0.5"]))
    model = detector.model.train()
    images = torch.zeros(1, 1, 64, 64)
    images[0, 0, 10:30, 12:20] = 1.0
    box = torch.tensor([[12.0, 10.0, 20.0, 30.0]])
    target = {"boxes": box, "labels": torch.tensor([1]), "keypoints": torch.tensor([[[16.0, 20.0, 2.0]]])}
    model.box_jitter = 0.0
    head = model.head
    # The closed form reads the point exactly: the annotated point is the box's center.
    with torch.no_grad():
        head.point.weight.zero_()
        head.point.bias.zero_()
    coords, origin, _, _ = head.measure(images, model.dense.forward_features(images), [box])
    exact = head.read(coords, target["labels"], origin)
    target["keypoints"][0, 0, :2] = exact[0, 0].detach()
    head.update_choice(target["labels"], torch.tensor([[[0.0, 1.0]]]), torch.ones(1, 1, dtype=torch.bool))
    outputs = model(images, [target])
    assert outputs["point_maps"].shape[0] == 0 and outputs["map_visible"].shape[0] == 0
    loss, terms = detector.criterion(outputs, [target])
    assert terms["map_cell"].item() == 0.0
    loss.backward()  # the map's parameters are in the graph (zero gradients), as DDP needs them
    assert head.point_map.slot_in.grad is not None and head.point_map.slot_in.grad.abs().sum().item() == 0.0
    # A class whose closed form is off trains the map.
    head.update_choice(target["labels"], torch.tensor([[[2.0, 1.0]]]), torch.ones(1, 1, dtype=torch.bool))
    assert model(images, [target])["point_maps"].shape[0] == 1
