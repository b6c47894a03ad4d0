"""The TorchScript export (SPEC section 8) loads without ocrloc and timm and matches eager outputs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from ocrloc.export import export_torchscript
from ocrloc.models.argmax_detector import ArgmaxDetector, DetectionsPassThrough
from ocrloc.models.baselines import BASELINE_TYPES, BoxPointPostprocess, TorchvisionDetector
from ocrloc.models.centernet import CenterNetDetector
from ocrloc.models.postprocess import CenterNetPostprocess

LOADER = textwrap.dedent("""
    import sys
    sys.modules["ocrloc"] = None  # any import of ocrloc or timm now fails
    sys.modules["timm"] = None
    import torch, torchvision
    model = torch.jit.load(sys.argv[1])
    inputs = torch.load(sys.argv[2])
    outputs = [model(x) for x in inputs]
    torch.save({"outputs": outputs, "rule": model.rule, "train_size": model.train_size}, sys.argv[3])
""")


def _outputs_without_ocrloc(path, inputs, tmp_path):
    """Run the exported file on ``inputs`` in a fresh interpreter where ocrloc and timm cannot be imported."""
    torch.save(inputs, tmp_path / "inputs.pt")
    run = subprocess.run([sys.executable, "-c", LOADER, str(path), str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return torch.load(tmp_path / "out.pt")


def _assert_matches_eager(model, postprocess, inputs, loaded):
    with torch.no_grad():
        for x, scripted in zip(inputs, loaded["outputs"]):
            eager = postprocess(model(x))
            assert len(eager) == len(scripted) == x.shape[0]
            for e, s in zip(eager, scripted):
                assert set(s) == {"boxes", "scores", "labels", "keypoints"}
                assert s["labels"].dtype == torch.int64 and s["keypoints"].shape[1:] == (1, 3)
                assert 0 < len(s["scores"]) <= 100
                for key in e:
                    assert e[key].shape == s[key].shape, key
                    assert (e[key].float() - s[key].float()).abs().max() <= 1e-4, key


@pytest.mark.parametrize("point_mode", ["offset", "heatmap"])
def test_export_matches_eager_without_ocrloc_or_timm(tmp_path, point_mode):
    torch.manual_seed(0)
    model = CenterNetDetector("test_resnet", fpn_channels=8, head_channels=8, point_mode=point_mode).eval()
    # Random weights give near-uniform heatmaps; keep every peak so the comparison has detections.
    postprocess = CenterNetPostprocess(4, score_threshold=0.0, point_mode=point_mode)
    path = tmp_path / "model.pt"
    export_torchscript(model, postprocess, "all10", [128, 128], path)
    inputs = [torch.rand(2, 1, 64, 64), torch.rand(1, 1, 96, 128)]
    loaded = _outputs_without_ocrloc(path, inputs, tmp_path)
    assert loaded["rule"] == "all10" and loaded["train_size"] == [128, 128]
    _assert_matches_eager(model, postprocess, inputs, loaded)


@pytest.mark.parametrize("kind", BASELINE_TYPES)
def test_baseline_export_matches_eager_without_ocrloc_or_timm(tmp_path, kind):
    torch.manual_seed(0)
    # fpn_channels 32: FCOS normalises with GroupNorm(32). Score threshold 0: untrained detectors score everything near their prior.
    model = TorchvisionDetector(kind, rule="seed37", backbone="test_resnet", fpn_channels=32, score_threshold=0.0).eval()
    postprocess = BoxPointPostprocess("seed37", label_offset=model.label_offset, from_keypoints=kind == "keypointrcnn")
    path = tmp_path / "model.pt"
    export_torchscript(model, postprocess, "seed37", [128, 128], path)
    # SSD's default boxes are fractions of the canvas, so it is checked on its training size only.
    inputs = [torch.rand(2, 1, 128, 128)] + ([] if kind == "ssd" else [torch.rand(1, 1, 64, 96)])
    loaded = _outputs_without_ocrloc(path, inputs, tmp_path)
    assert loaded["rule"] == "seed37"
    _assert_matches_eager(model, postprocess, inputs, loaded)


def test_argmax_detector_export_matches_eager_without_ocrloc_or_timm(tmp_path):
    torch.manual_seed(0)
    decode = CenterNetPostprocess(4, score_threshold=0.0)
    model = ArgmaxDetector("test_resnet", fpn_channels=8, head_channels=8, soft_channels=2, postprocess=decode).eval()
    torch.nn.init.normal_(model.head.point.weight, std=0.1)  # a head that moves the points away from the crop center
    path = tmp_path / "model.pt"
    export_torchscript(model, DetectionsPassThrough(), "all10", [128, 128], path)
    inputs = [torch.rand(2, 1, 64, 64), torch.rand(1, 1, 96, 128)]
    loaded = _outputs_without_ocrloc(path, inputs, tmp_path)
    _assert_matches_eager(model, DetectionsPassThrough(), inputs, loaded)


def test_export_rejects_bad_shapes(tmp_path):
    model = CenterNetDetector("test_resnet", fpn_channels=8, head_channels=8).eval()
    scripted = export_torchscript(model, CenterNetPostprocess(4), "seed37", [128, 128], tmp_path / "m.pt")
    with pytest.raises(Exception, match="multiples of 32"):
        scripted(torch.rand(1, 1, 70, 64))
    with pytest.raises(Exception, match=r"\[B, 1, H, W\]"):
        scripted(torch.rand(1, 3, 64, 64))
