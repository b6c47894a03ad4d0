"""Backbones, heads, loss and decoding of the dense point detector."""

from __future__ import annotations

import pytest
import torch

from ocrloc.models.backbone import TimmBackbone
from ocrloc.models.centernet import CenterNetDetector, head_layout
from ocrloc.models.centernet_loss import CenterNetCriterion, focal_heatmap_loss
from ocrloc.models.centernet_decode import CenterNetDecoder


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv3_small_100", "efficientnet_b0"])
def test_backbone_levels_match_feature_info(name):
    backbone = TimmBackbone(name, in_chans=1, min_stride=4)
    features = backbone(torch.rand(2, 1, 64, 96))
    assert backbone.strides == [4, 8, 16, 32]
    assert len(features) == len(backbone.channels) == 4
    for f, ch, s in zip(features, backbone.channels, backbone.strides):
        assert f.shape == (2, ch, 64 // s, 96 // s)


@pytest.mark.parametrize("name, stride", [("resnet18", 4), ("mobilenetv3_small_100", 8), ("efficientnet_b0", 4)])
@pytest.mark.parametrize("point_mode", ["offset", "heatmap"])
def test_detector_returns_every_head_at_the_head_stride(name, stride, point_mode):
    model = CenterNetDetector(name, fpn_channels=16, head_stride=stride, head_channels=16, point_mode=point_mode,
                              num_classes=10, num_keypoints=1)
    for mode in (model.train, model.eval):
        mode()
        out = model(torch.rand(2, 1, 64, 128))
        assert set(out) == set(head_layout(point_mode, 10, 1))
        for key, channels in head_layout(point_mode, 10, 1).items():
            assert out[key].shape == (2, channels, 64 // stride, 128 // stride), key


def test_unknown_stride_and_point_mode_are_errors():
    with pytest.raises(ValueError, match="head_stride 2"):
        CenterNetDetector("test_convnext", head_stride=2, num_classes=10, num_keypoints=1)
    with pytest.raises(ValueError, match="point_mode 'corner'"):
        head_layout("corner", 10, 1)


def empty_outputs(h=8, w=8, point_mode="offset"):
    out = {"heatmap": torch.full((1, 10, h, w), -10.0), "size": torch.zeros(1, 2, h, w),
           "offset": torch.zeros(1, 2, h, w)}
    if point_mode == "offset":
        out["point"] = torch.zeros(1, 20, h, w)
    else:
        out["point_heatmap"] = torch.full((1, 10, h, w), -10.0)
        out["point_offset"] = torch.zeros(1, 2, h, w)
    return out


def test_decoding_hand_built_outputs_gives_exact_detections():
    out = empty_outputs()
    # A 7 whose peak is at cell (x=2, y=3), score sigmoid(2); center offset (0.5, 0.25) cells,
    # size (3, 5) cells, point 1.25 cells right and 0.5 cells below the cell corner.
    out["heatmap"][0, 7, 3, 2] = 2.0
    out["offset"][0, :, 3, 2] = torch.tensor([0.5, 0.25])
    out["size"][0, :, 3, 2] = torch.tensor([3.0, 5.0])
    out["point"][0, 14:16, 3, 2] = torch.tensor([1.25, 0.5])
    out["point"][0, 6:8, 3, 2] = torch.tensor([9.0, 9.0])  # class 3's point: must not be read
    # A weaker 1 at cell (6, 1) and a duplicate 4 on the same spot as the 7 (suppressed: lower score).
    out["heatmap"][0, 1, 1, 6] = 1.0
    out["size"][0, :, 1, 6] = torch.tensor([1.0, 2.0])
    out["heatmap"][0, 4, 3, 2] = 1.5
    det = CenterNetDecoder(stride=4, score_threshold=0.3, num_classes=10, num_keypoints=1)(out)[0]
    assert det["labels"].tolist() == [7, 1]
    torch.testing.assert_close(det["scores"], torch.tensor([2.0, 1.0]).sigmoid())
    # 7: center ((2 + 0.5) * 4, (3 + 0.25) * 4) = (10, 13), size (12, 20).
    torch.testing.assert_close(det["boxes"][0], torch.tensor([4.0, 3.0, 16.0, 23.0]))
    torch.testing.assert_close(det["keypoints"][0, 0], torch.tensor([(2 + 1.25) * 4, (3 + 0.5) * 4, torch.tensor(2.0).sigmoid()]))
    torch.testing.assert_close(det["boxes"][1], torch.tensor([24.0 - 2, 4.0 - 4, 24.0 + 2, 4.0 + 4]))
    assert det["keypoints"].shape == (2, 1, 3)


def test_point_heatmap_decoding_takes_the_peak_inside_the_box():
    out = empty_outputs(point_mode="heatmap")
    out["heatmap"][0, 2, 4, 4] = 3.0
    out["size"][0, :, 4, 4] = torch.tensor([4.0, 4.0])  # box cells 2..6
    out["point_heatmap"][0, 2, 3, 2] = 2.0  # inside the box: the point
    out["point_heatmap"][0, 2, 0, 7] = 5.0  # stronger but outside the box: ignored
    out["point_offset"][0, :, 3, 2] = torch.tensor([0.75, 0.5])
    det = CenterNetDecoder(stride=4, point_mode="heatmap", num_classes=10, num_keypoints=1)(out)[0]
    assert det["labels"].tolist() == [2]
    torch.testing.assert_close(det["keypoints"][0, 0, :2], torch.tensor([(2 + 0.75) * 4, (3 + 0.5) * 4]))


def test_postprocess_keeps_at_most_max_detections_sorted_by_score():
    out = empty_outputs(16, 16)
    torch.manual_seed(0)  # two classes peaking on one cell give one box: suppressed as duplicates
    out["heatmap"] = torch.randn(1, 10, 16, 16)
    out["size"] += 0.5  # tiny boxes: nothing suppressed
    det = CenterNetDecoder(stride=4, max_detections=7, score_threshold=0.0, iou_threshold=0.99,
                           num_classes=10, num_keypoints=1)(out)[0]
    assert len(det["scores"]) == 7
    assert torch.all(det["scores"][:-1] >= det["scores"][1:])


def target(boxes, labels, points):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels),
            "keypoints": torch.tensor([[[x, y, 2.0]] for x, y in points])}


@pytest.mark.parametrize("point_mode", ["offset", "heatmap"])
def test_loss_is_finite_and_perfect_outputs_score_lower(point_mode):
    crit = CenterNetCriterion(4, {"giou": 1.0}, point_mode=point_mode, num_classes=10, num_keypoints=1)
    targets = [target([[8.0, 4.0, 20.0, 28.0]], [5], [(12.5, 7.0)]), target([], [], [])]
    targets[1]["keypoints"] = torch.zeros(0, 1, 3)
    targets[1]["boxes"] = torch.zeros(0, 4)
    out = {k: torch.zeros(2, c, 8, 8) for k, c in head_layout(point_mode, 10, 1).items()}
    loss, terms = crit(out, targets)
    assert torch.isfinite(loss) and set(terms) >= {"heatmap", "size", "offset"}
    built = crit.build_targets(targets, (2, 10, 8, 8), torch.device("cpu"))
    assert built["cells"].tolist() == [[3, 4]]  # center (14, 16) / 4 = (3.5, 4.0)
    torch.testing.assert_close(built["offset"], torch.tensor([[0.5, 0.0]]))
    torch.testing.assert_close(built["size"], torch.tensor([[3.0, 6.0]]))
    assert built["heatmap"][0, 5, 4, 3] == 1.0 and built["heatmap"].sum() > 1.0
    # Outputs equal to the targets: regression terms vanish.
    good = {k: v.clone() for k, v in out.items()}
    good["heatmap"] = torch.where(built["heatmap"] == 1, 10.0, -10.0)
    good["size"][0, :, 4, 3] = built["size"][0]
    good["offset"][0, :, 4, 3] = built["offset"][0]
    if point_mode == "offset":
        good["point"][0, 10:12, 4, 3] = built["point"][0]
    good_loss, good_terms = crit(good, targets)
    assert good_terms["size"] == 0 and good_terms["offset"] == 0 and good_loss < loss
    if point_mode == "offset":
        assert good_terms["point"] == 0


def test_focal_loss_rewards_confident_correct_heatmaps():
    target_map = torch.zeros(1, 1, 4, 4)
    target_map[0, 0, 1, 1] = 1.0
    right = torch.where(target_map == 1, 6.0, -6.0)
    assert focal_heatmap_loss(right, target_map) < 0.01 < focal_heatmap_loss(-right, target_map)


def test_the_finest_level_alone_equals_the_full_pyramids_and_old_weights_load():
    from ocrloc.models.trunk import Trunk

    torch.manual_seed(0)
    full = Trunk("test_resnet", fpn_channels=8, min_stride=4).eval()
    lean = Trunk("test_resnet", fpn_channels=8, min_stride=4).eval()
    lean.keep_finest_only()
    lean.load_state_dict(full.state_dict())  # a checkpoint with every level's output conv loads (they are dropped)
    images = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(lean(images)[lean.level_names[0]], full(images)[full.level_names[0]])
    assert sum(p.numel() for p in lean.parameters()) < sum(p.numel() for p in full.parameters())
    model = CenterNetDetector("test_resnet", fpn_channels=8, head_channels=8, num_classes=10, num_keypoints=1)
    loss = sum(v.sum() for v in model(images).values())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())  # nothing computed that no head reads


@pytest.mark.parametrize("point_mode", ["offset", "heatmap"])
def test_shared_head_stem_runs_one_3x3_conv_for_every_head(point_mode):
    def convs_3x3(model):
        return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]

    common = dict(fpn_channels=16, head_stride=4, head_channels=8, point_mode=point_mode, num_classes=3,
                  num_keypoints=2)
    separate = CenterNetDetector("test_resnet", **common)
    shared = CenterNetDetector("test_resnet", shared_head_stem=True, **common)
    layout = head_layout(point_mode, 3, 2)
    trunk_convs = len(convs_3x3(separate.trunk))
    assert len(convs_3x3(separate)) - trunk_convs == len(layout) and len(convs_3x3(shared)) - trunk_convs == 1
    out = shared.eval()(torch.rand(2, 1, 64, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (2, ch, 16, 24) for k, ch in layout.items()}
    # the heatmap keeps its focal-loss prior: p = 0.01 everywhere before training
    assert torch.allclose(shared.heads["heatmap"].bias.sigmoid(), torch.full((3,), 0.01))
    # the default is CenterNet's own layout, so earlier checkpoints keep their keys
    assert "heads.heatmap.0.weight" in separate.state_dict() and "head_stem.0.weight" in shared.state_dict()


@pytest.mark.parametrize("point_mode", ["offset", "heatmap"])
def test_batched_decoding_gives_each_image_what_it_gives_the_image_alone(point_mode):
    """The one decoding is batched (one suppression over the batch, boxes of different images moved
    apart): an image's detections must not depend on the others of its batch, and the per-image
    dicts are the flat outputs split by ``batch_index``."""
    torch.manual_seed(1)
    out = {name: torch.randn(3, channels, 8, 8) for name, channels in head_layout(point_mode, 10, 1).items()}
    out["size"] = out["size"].abs() * 3  # boxes that overlap, so the suppression has work to do
    decoder = CenterNetDecoder(stride=4, max_detections=20, score_threshold=0.1, iou_threshold=0.3,
                               point_mode=point_mode, num_classes=10, num_keypoints=1)
    batched = decoder(out)
    flat = decoder.detect(out, 32, 32)
    assert flat["batch_index"].tolist() == sorted(flat["batch_index"].tolist())
    for i, together in enumerate(batched):
        (alone,) = decoder({name: value[i:i + 1] for name, value in out.items()})
        assert len(alone["scores"]) > 1 and alone.keys() == together.keys()
        for key in alone:
            torch.testing.assert_close(together[key], alone[key])
            torch.testing.assert_close(together[key], flat[key][flat["batch_index"] == i])


def test_max_stride_builds_the_backbone_only_up_to_that_level():
    from ocrloc.models.trunk import Trunk

    torch.manual_seed(0)
    full = Trunk("test_resnet", fpn_channels=8, min_stride=8).eval()
    cut = Trunk("test_resnet", fpn_channels=8, min_stride=8, max_stride=16).eval()
    assert full.strides == [8, 16, 32] and cut.strides == [8, 16] and cut.level_names == ["p3", "p4"]
    # the last stage is not built at all: no weights, no computation
    assert any(".layer4." in k for k in full.state_dict()) and not any(".layer4." in k for k in cut.state_dict())
    # what is built is the same network: with the full one's weights, the same levels out
    cut.body.load_state_dict({k: v for k, v in full.body.state_dict().items() if ".layer4." not in k})
    images = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(cut.body(images), full.body(images)))
    model = CenterNetDetector("test_resnet", fpn_channels=8, head_stride=8, head_channels=8, max_stride=16,
                              num_classes=3, num_keypoints=2)
    assert model.size_divisible == 16  # inputs pad to the coarsest level built, not to 32
    assert model.eval()(images)["heatmap"].shape == (2, 3, 8, 12)


@pytest.mark.parametrize("sets, message", [
    (["model.max_stride=12"], "model.max_stride 12 is not a level of test_resnet (strides [2, 4, 8, 16, 32])"),
    (["model.head_stride=8", "model.max_stride=4"],
     "model.max_stride 4 is finer than head_stride 8: the heads' level would not be built"),
])
def test_a_max_stride_the_backbone_cannot_give_is_refused_naming_the_key(sets, message):
    from ocrloc.config import ConfigError, load_config
    from ocrloc.models.build import build

    with pytest.raises(ConfigError) as err:
        build(load_config(None, ["model.type=argmax", "model.backbone=test_resnet", *sets]))
    assert str(err.value) == message
