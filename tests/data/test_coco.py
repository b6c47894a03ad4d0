"""COCO keypoint files: written splits load in pycocotools and round-trip through the datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ocrloc.data.canvas import CATEGORIES, CanvasGenerator
from ocrloc.data.coco import ANNOTATIONS_FILE, load_coco, read_image_file
from ocrloc.data.datasets import CocoKeypointDataset, SyntheticCanvasDataset, collate_detection
from ocrloc.data.points import POINT_NAMES
from ocrloc.data.rules import get_rule
from ocrloc.data.splits import write_split

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def split_dir(pools, tmp_path_factory):
    out = tmp_path_factory.mktemp("split") / "test"
    gen = CanvasGenerator("canvas128", "all10", "test", 11, pools["test"])
    write_split(gen, 12, out, progress=False)
    return out, gen


def test_written_split_loads_in_pycocotools(split_dir):
    out, gen = split_dir
    coco = load_coco(out / ANNOTATIONS_FILE)
    assert sorted(coco.getCatIds()) == list(range(10))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == [str(k) for k in range(10)]
    assert all(c["keypoints"] == ["point"] and c["skeleton"] == [] for c in CATEGORIES)
    assert sorted(coco.getImgIds()) == list(range(1, 13))
    anns = coco.loadAnns(coco.getAnnIds())
    assert sorted(a["id"] for a in anns) == list(range(1, len(anns) + 1))  # id 0 would break COCOeval
    table = get_rule("all10")
    for ann in anns:
        x, y, w, h = ann["bbox"]
        assert ann["area"] == w * h
        assert ann["num_keypoints"] == 1 and ann["iscrowd"] == 0 and ann["keypoints"][2] == 2
        assert set(ann["points"]) == set(POINT_NAMES)
        assert ann["keypoints"][:2] == ann["points"][table[ann["category_id"]]]
    assert coco.dataset["info"]["rule"] == "all10" and coco.dataset["info"]["seed"] == 11


def test_pngs_hold_the_exact_canvases(split_dir):
    out, gen = split_dir
    for i in (0, 5, 11):
        np.testing.assert_array_equal(read_image_file(out / "images" / f"{i:06d}.png"), gen(i).image)


def test_coco_dataset_round_trips_to_the_synthetic_dataset(split_dir):
    out, gen = split_dir
    from_disk = CocoKeypointDataset(out)
    on_the_fly = SyntheticCanvasDataset(gen, 12)
    assert len(from_disk) == len(on_the_fly) == 12
    for i in range(12):
        (img_a, tgt_a), (img_b, tgt_b) = from_disk[i], on_the_fly[i]
        assert img_a.shape == (1, 128, 128) and img_a.dtype == torch.float32
        assert torch.equal(img_a, img_b)
        assert set(tgt_a) == set(tgt_b)
        assert tgt_a["image_id"] == tgt_b["image_id"] == i + 1
        assert tgt_a["keypoints"].shape == (len(tgt_a["labels"]), 1, 3)
        assert tgt_a["labels"].dtype == torch.int64 and tgt_a["boxes"].dtype == torch.float32
        for key in ("boxes", "labels", "keypoints", "area", "iscrowd"):
            torch.testing.assert_close(tgt_a[key], tgt_b[key], rtol=0, atol=1e-5, msg=key)
    # boxes are xyxy: x2 - x1 is the COCO width.
    ann = from_disk.coco.loadAnns(from_disk.coco.getAnnIds(imgIds=[1]))[0]
    assert from_disk[0][1]["boxes"][0].tolist() == [ann["bbox"][0], ann["bbox"][1],
                                                   ann["bbox"][0] + ann["bbox"][2], ann["bbox"][1] + ann["bbox"][3]]


def test_collate_stacks_canvases(split_dir):
    out, _ = split_dir
    ds = CocoKeypointDataset(out)
    images, targets = collate_detection([ds[0], ds[1], ds[2]])
    assert images.shape == (3, 1, 128, 128) and len(targets) == 3


def test_resampling_each_epoch_gives_new_canvases_and_fixed_gives_the_same(pools):
    gen = CanvasGenerator("canvas128", "seed37", "train", 0, pools["train"])
    fixed = SyntheticCanvasDataset(gen, 4)
    fresh = SyntheticCanvasDataset(gen, 4, resample_each_epoch=True)
    first = fresh[1][0]
    fixed.set_epoch(3)
    fresh.set_epoch(3)
    assert torch.equal(fixed[1][0], first)
    assert not torch.equal(fresh[1][0], first)
    assert fresh[1][1]["image_id"] == 3 * 4 + 1 + 1
    with pytest.raises(IndexError):
        fixed[4]


def test_existing_split_is_not_overwritten_by_default(split_dir, pools):
    out, gen = split_dir
    before = (out / ANNOTATIONS_FILE).read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_split(gen, 2, out, progress=False)
    assert (out / ANNOTATIONS_FILE).read_bytes() == before
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]  # no leftovers


@pytest.mark.parametrize("mask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_a_split_folder_has_the_permissions_the_umask_gives_as_mkdir(tmp_path, pools, mask):
    """Built in a 0700 temporary folder, the split is given mkdir's permissions before it is renamed into place."""
    gen = CanvasGenerator("single", "all10", "test", 0, pools["test"])
    old = os.umask(mask)
    try:
        write_split(gen, 2, tmp_path / "out", progress=False)
        (tmp_path / "made_by_mkdir").mkdir()
    finally:
        os.umask(old)
    expected = (tmp_path / "made_by_mkdir").stat().st_mode & 0o777
    assert expected == 0o777 & ~mask
    for folder in (tmp_path / "out", tmp_path / "out" / "images"):
        assert folder.stat().st_mode & 0o777 == expected, folder


class InterruptedGenerator(CanvasGenerator):
    """Stops like a Ctrl-C in the middle of a split."""

    def generate(self, index):
        if index == 3:
            raise KeyboardInterrupt
        return super().generate(index)


def test_interrupted_write_leaves_nothing(tmp_path, pools):
    gen = InterruptedGenerator("canvas128", "all10", "test", 0, pools["test"])
    with pytest.raises(KeyboardInterrupt):
        write_split(gen, 6, tmp_path / "out", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_invalid_coco_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        load_coco(bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_coco(tmp_path / "missing.json")


def test_make_dataset_tool_writes_split_and_preview(tmp_path):
    out = tmp_path / "seed37_test"
    preview = tmp_path / "preview.png"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, str(REPO / "tools" / "make_dataset.py"), "--preset", "canvas128", "--rule", "seed37",
         "--split", "test", "--count", "6", "--seed", "2", "--out", str(out), "--preview", str(preview),
         "--preview-count", "4"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    coco = json.loads((out / ANNOTATIONS_FILE).read_text())
    assert len(coco["images"]) == 6 and {a["category_id"] for a in coco["annotations"]} <= {3, 7}
    assert len(list((out / "images").glob("*.png"))) == 6
    grid = read_image_file(preview)
    assert grid.shape[0] > 2 * 128 and grid.shape[1] > 2 * 128  # 2 x 2 panels, upscaled


def test_coco_subset_keeps_the_named_images_their_annotations_and_every_category():
    from ocrloc.data.coco import coco_subset

    coco = {"images": [{"id": 1}, {"id": 2}, {"file_name": "no id"}],
            "annotations": [{"id": 10, "image_id": 1}, {"id": 11, "image_id": 2}, {"id": 12}],
            "categories": [{"id": 7}]}
    subset = coco_subset(coco, [2, 3])
    assert subset == {"images": [{"id": 2}], "annotations": [{"id": 11, "image_id": 2}], "categories": [{"id": 7}]}
    assert subset["images"][0] is coco["images"][1]  # entries shared, lists new
    assert coco_subset({"images": []}, [1]) == {"images": [], "annotations": [], "categories": []}
