"""The TorchScript export (docs/task.md, "The exported model") loads without ocrloc and timm and matches
eager outputs on float [B, 1, H, W] input with H, W multiples of 32; tests/export/test_formats.py covers the other
formats and inputs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from ocrloc.config import load_config
from ocrloc.export import export_torchscript
from ocrloc.models.build import build
from tests.helpers import FAMILIES, TINY_DETECTOR as TINY, tiny_detector

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


def _assert_matches_eager(predictor, inputs, loaded):
    with torch.no_grad():
        for x, scripted in zip(inputs, loaded["outputs"]):
            eager = predictor(x)
            assert len(eager) == len(scripted) == x.shape[0]
            for e, s in zip(eager, scripted):
                assert {"boxes", "scores", "labels", "keypoints"} <= set(s)
                assert s["labels"].dtype == torch.int64 and s["keypoints"].shape[1:] == (1, 3)
                assert 0 < len(s["scores"]) <= 100
                for key in e:
                    assert e[key].shape == s[key].shape, key
                    assert (e[key].float() - s[key].float()).abs().max() <= 1e-4, key




@pytest.mark.slow  # one fresh interpreter per family
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_exports_and_matches_eager_without_ocrloc_or_timm(tmp_path, family):
    """Every family goes through build()'s predictor, and runs on its own canvases once exported."""
    detector = tiny_detector(family)
    path = tmp_path / "model.pt"
    export_torchscript(detector.predictor, "seed37", [128, 128], path)
    if family == "study":  # the study's canvases: 32 x 32, exactly
        inputs = [torch.rand(3, 1, 32, 32)]
    elif family == "ssd":  # SSD's default boxes are fractions of the canvas: its training size only
        inputs = [torch.rand(2, 1, 128, 128)]
    else:
        inputs = [torch.rand(2, 1, 64, 64), torch.rand(1, 1, 96, 128)]
    loaded = _outputs_without_ocrloc(path, inputs, tmp_path)
    assert loaded["rule"] == "seed37" and loaded["train_size"] == [128, 128]
    _assert_matches_eager(detector.predictor, inputs, loaded)


def test_the_torchscript_file_pads_any_size_and_refuses_what_it_cannot_read(tmp_path):
    """Any size is padded inside (bottom and right, as pad_to_rule does); a channel count other than
    1 or 3, an integer dtype other than uint8, or a side past max_size is refused in words."""
    from ocrloc.engine.inference import pad_to_rule

    torch.manual_seed(0)
    detector = build(load_config(None, TINY)).eval()
    scripted = export_torchscript(detector.predictor, "seed37", [128, 128], tmp_path / "m.pt")
    images = torch.rand(2, 1, 70, 45)
    with torch.no_grad():
        eager = detector.predictor(pad_to_rule(images, detector.predictor))
    for e, s in zip(eager, scripted(images)):
        assert len(e["scores"]) > 0 and torch.equal(e["labels"], s["labels"])
        assert (e["boxes"] - s["boxes"]).abs().max() <= 1e-4
    with pytest.raises(Exception, match=r"C = 1 \(grey\) or 3 \(RGB\); got shape \[1, 2, 64, 64\]"):
        scripted(torch.rand(1, 2, 64, 64))
    with pytest.raises(Exception, match=r"expected uint8 images \(0..255\) or float images in \[0, 1\]; got another"):
        scripted(torch.zeros(1, 1, 64, 64, dtype=torch.int32))
    study = build(load_config(None, [*TINY, "model.type=study", "data.preset=single"]))
    scripted = export_torchscript(study.predictor, "seed37", [32, 32], tmp_path / "s.pt")
    assert len(scripted(torch.rand(2, 1, 32, 32))) == 2
    assert len(scripted(torch.randint(0, 256, (1, 3, 20, 31), dtype=torch.uint8))) == 1  # padded to 32 x 32
    with pytest.raises(Exception, match=r"images of 40 x 32 px \(padded: 40 x 32\) are larger than this model takes "
                                        r"\(at most 32 x 32\)"):
        scripted(torch.rand(1, 1, 40, 32))


@pytest.mark.parametrize("family", ["centernet_offset", "argmax_map"])
def test_the_torchscript_file_refuses_floats_outside_0_1_and_non_finite_values(tmp_path, family):
    """Issue 26: 0..255 floats were answered (70 detections where the image in [0, 1] gives 0); now
    every float outside [0, 1] (past the 1e-3 rounding slack), and NaN or infinity, is one ValueError."""
    import torchvision  # noqa: F401  (registers torchvision::nms, which the exported file calls)

    export_torchscript(tiny_detector(family).predictor, "seed37", [128, 128], tmp_path / "model.pt")
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    image = torch.rand(1, 1, 64, 64)
    bad = {"0..255": image * 255, "negative": image - 1.0,
           "NaN": image.clone().index_fill_(3, torch.tensor([5]), float("nan")),
           "infinity": image.clone().index_fill_(2, torch.tensor([0]), float("inf"))}
    for name, x in bad.items():
        with pytest.raises(Exception, match=r"float images must hold finite values in \[0, 1\] \(divide 0..255 "
                                            r"floats by 255, or pass uint8 images\); got ") as info:
            loaded(x)
        assert ("NaN or infinite" in str(info.value)) == (name in ("NaN", "infinity")), name
    assert len(loaded(image)) == 1 and len(loaded(image.clamp(max=1.0) + 1e-4)) == 1  # rounding slack passes
    assert loaded(torch.zeros(0, 3, 64, 64)) == []  # an empty batch has no value to refuse
    assert len(loaded((image * 255).to(torch.uint8))) == 1  # uint8 0..255 is what it takes


@pytest.mark.parametrize("family", ["centernet_offset", "keypointrcnn"])
def test_the_exported_file_answers_a_batch_of_0_with_an_empty_list(tmp_path, family):
    import torchvision  # noqa: F401  (registers torchvision::nms, which the exported file calls)

    detector = build(load_config(None, [*TINY, *FAMILIES[family]]))
    path = tmp_path / "model.pt"
    export_torchscript(detector.predictor, "seed37", [128, 128], path)
    loaded = torch.jit.load(str(path))
    assert loaded(torch.zeros(0, 1, 64, 64)) == [] and loaded(torch.zeros(0, 3, 70, 64, dtype=torch.uint8)) == []
    assert len(loaded(torch.rand(1, 1, 64, 64))) == 1
    with pytest.raises(Exception, match="C = 1 .grey. or 3"):  # an empty batch is still checked
        loaded(torch.zeros(0, 2, 64, 64))
