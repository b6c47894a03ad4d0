"""``ocrloc export --format``: the file written, the message saying how to load it, one-line refusals."""

from __future__ import annotations

import json

import pytest
import torch

from ocrloc.cli import main
from ocrloc.config import config_to_dict, load_config
from ocrloc.engine.checkpoint import save_checkpoint
from ocrloc.models.build import build
from tests.helpers import FAMILIES, TINY_DETECTOR as TINY


def _checkpoint(folder, family: str):
    torch.manual_seed(0)
    config = load_config(None, [*TINY, *FAMILIES[family], "data.rule=seed37"])
    detector = build(config)
    path = folder / f"{family}.pt"
    save_checkpoint({"model": detector.model.state_dict(), "config": config_to_dict(config),
                     "meta": {"rule": "seed37", "train_size": [128, 128]}, "step": 0}, path)
    return path


def test_format_export_writes_a_pt2_with_its_metadata_and_says_how_to_load_it(tmp_path, capsys):
    out = tmp_path / "model.pt2"
    assert main(["export", "--checkpoint", str(_checkpoint(tmp_path, "centernet_offset")), "--out", str(out),
                 "--format", "export", "--input-dtype", "float32"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (export;" in printed and "float32 [B, 1 or 3, H, W]" in printed
    assert f"torch.export.load('{out}').module()" in printed
    extra = {"ocrloc.json": ""}
    model = torch.export.load(str(out), extra_files=extra).module()
    meta = json.loads(extra["ocrloc.json"])
    assert meta["rule"] == "seed37" and meta["train_size"] == [128, 128] and meta["input"]["dtype"] == "float32"
    assert meta["outputs"] == ["boxes", "scores", "labels", "keypoints", "batch_index"]
    with torch.no_grad():
        outputs = model(torch.rand(2, 3, 50, 70))
    assert outputs["boxes"].shape[1] == 4 and outputs["batch_index"].shape == outputs["scores"].shape


@pytest.mark.parametrize("fmt", ["export", "onnx"])
def test_a_family_without_a_batched_graph_is_refused_in_one_line_naming_torchscript(tmp_path, capsys, fmt):
    out = tmp_path / "model.bin"
    assert main(["export", "--checkpoint", str(_checkpoint(tmp_path, "keypointrcnn")), "--out", str(out),
                 "--format", fmt]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --format {fmt}: model.type keypointrcnn has no batched graph for torch.export or ONNX "
                   f"(centernet and argmax have); use --format torchscript\n")
    assert not out.exists()


def test_an_unknown_format_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--checkpoint", "x.pt", "--out", "y", "--format", "tflite"])
    assert exit_info.value.code == 2 and "invalid choice: 'tflite'" in capsys.readouterr().err
