"""One data-source protocol (ocrloc/data/source.py): the MNIST canvases, the printed glyphs and a COCO folder all
say their task, rule, preset and image size, and give per sample the image, the target and COCO annotations; the
code that reads them asks the source, never which class it is."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from ocrloc.data.build import describe_training_data
from ocrloc.data.canvas import CanvasGenerator
from ocrloc.data.datasets import CocoKeypointDataset, SyntheticCanvasDataset
from ocrloc.data.glyphs import GlyphCanvasGenerator, glyph_task
from ocrloc.data.source import DataSource
from ocrloc.data.splits import split_coco, write_split
from ocrloc.data.task import digits_task

REPO = Path(__file__).resolve().parents[2]
SOURCE_CLASSES = {"CanvasGenerator", "GlyphCanvasGenerator", "CocoKeypointDataset", "SyntheticCanvasDataset"}


@pytest.fixture(scope="module")
def sources(pools, tmp_path_factory):
    mnist = CanvasGenerator("canvas128", "all10", "test", 3, pools["test"])
    glyphs = GlyphCanvasGenerator("glyphs128", "val", 3)
    folder = tmp_path_factory.mktemp("source") / "glyphs"
    write_split(glyphs, 4, folder, progress=False)
    return {"mnist": mnist, "glyphs": glyphs, "coco": CocoKeypointDataset(folder)}


def test_every_source_follows_the_protocol(sources):
    for name, source in sources.items():
        assert isinstance(source, DataSource), name
        sample = source.sample(1)
        assert sample.image.dtype == np.uint8 and sample.image.shape == source.image_size == (128, 128), name
        target = source.target(sample, 2)
        annotations = source.annotations(sample, 2, 5)
        assert target["image_id"] == 2 and len(annotations) == len(target["labels"]) > 0, name
        assert [a["id"] for a in annotations] == list(range(5, 5 + len(annotations))), name
        assert {a["image_id"] for a in annotations} == {2}, name
        # Labels are class indices of the source's task; the annotations carry its category ids.
        ids = [source.task.class_ids[int(k)] for k in target["labels"]]
        assert ids == [a["category_id"] for a in annotations], name
        assert [c["id"] for c in source.categories()] == list(source.task.class_ids), name


def test_each_source_describes_its_own_training_data(sources):
    assert describe_training_data(sources["mnist"]) == {"task": digits_task(), "train_size": [128, 128],
                                                        "preset": "canvas128", "rule": "all10"}
    assert describe_training_data(sources["glyphs"]) == {"task": glyph_task(), "train_size": [128, 128],
                                                         "preset": "glyphs128", "rule": None}
    # A COCO folder: its own categories define the task; no preset, no rule.
    assert describe_training_data(sources["coco"]) == {"task": glyph_task(), "train_size": [128, 128],
                                                       "preset": None, "rule": None}


def test_a_coco_folder_written_again_from_its_source_is_the_same_data(sources, tmp_path):
    folder = sources["coco"]
    again = split_coco(folder, len(folder), progress=False)
    original = folder.coco.dataset
    assert again["categories"] == original["categories"]
    assert again["annotations"] == original["annotations"]  # ids renumbered from 1: the written split's own
    # And the generated split it came from: the glyph source's samples are the folder's images.
    for k in range(len(folder)):
        assert np.array_equal(folder.sample(k).image, sources["glyphs"].sample(k).image)


def test_the_synthetic_dataset_gives_each_sources_target(sources):
    for name in ("mnist", "glyphs"):
        source = sources[name]
        image, target = SyntheticCanvasDataset(source, 3)[2]
        expected = source.target(source.sample(2), 3)
        assert torch.equal(image[0], torch.from_numpy(source.sample(2).image).float() / 255), name
        assert all(torch.equal(target[k], expected[k]) for k in ("boxes", "labels", "keypoints", "area")), name


def test_no_code_tells_the_sources_apart_by_class():
    # isinstance(x, <a source class>) in the package would be a branch a new source must be added to.
    found = []
    for path in sorted((REPO / "ocrloc").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
                named = {n.id if isinstance(n, ast.Name) else getattr(n, "attr", None) for n in ast.walk(node.args[1])}
                if named & SOURCE_CLASSES:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert found == []
