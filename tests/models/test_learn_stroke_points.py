"""Points no coordinate feature gives, learned from a COCO folder's annotations alone.

The fixture draws its own search over the ink: per class, a reference point at random (in
fractions of the ink box, inside or outside it) and the ink pixel whose center is nearest to it
in the *taxicab* (L1) metric, ties to the first in row-major order. No module of ocrloc names
this search (its own stroke points are Euclidean or along a ray, ``ocrloc.data.points``), no
extreme, box edge or centroid gives it, and the fixture writes it into ``keypoints``, the only
place a model can learn it from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ocrloc.data.canvas import CanvasGenerator
from ocrloc.data.splits import write_split
from ocrloc.data.datasets import CocoKeypointDataset, collate_detection
from ocrloc.models.argmax_detector import ArgmaxPointHead

CLASSES = (0, 2, 7)


def taxicab_nearest_ink(ink: np.ndarray, a: float, b: float):
    """The ink pixel center nearest to ``(x + a w, y + b h)`` in |dx| + |dy| (the ink box ``x, y, w, h``)."""
    rows, cols = np.nonzero(ink)
    x, y = cols.min(), rows.min()
    w, h = cols.max() + 1 - x, rows.max() + 1 - y
    distance = np.abs(cols + 0.5 - (x + a * w)) + np.abs(rows + 0.5 - (y + b * h))
    i = int(np.argmin(distance))
    return float(cols[i] + 0.5), float(rows[i] + 0.5)


def relabel(folder: Path, references) -> None:
    path = folder / "annotations.json"
    coco = json.loads(path.read_text())
    images = {i["id"]: folder / i["file_name"] for i in coco["images"]}
    from PIL import Image

    pixels = {k: np.asarray(Image.open(v)) for k, v in images.items()}
    for ann in coco["annotations"]:
        x, y, w, h = (int(v) for v in ann["bbox"])
        ink = pixels[ann["image_id"]][y:y + h, x:x + w] >= 128
        px, py = taxicab_nearest_ink(ink, *references[ann["category_id"]])
        ann["keypoints"] = [px + x, py + y, 2]
        del ann["point_name"]
    coco["info"]["rule"] = "drawn by the test"
    path.write_text(json.dumps(coco))


pytestmark = pytest.mark.slow  # writes COCO folders, then 180 optimizer steps of the point map


@pytest.fixture(scope="module")
def search_folders(tmp_path_factory, pools):
    root = tmp_path_factory.mktemp("taxicab")
    rule = root / "classes.yaml"  # which classes the canvases hold; their points are the test's
    rule.write_text("".join(f"{c}: center\n" for c in CLASSES))
    rng = np.random.default_rng(24)
    references = {c: tuple(rng.uniform(-0.2, 1.2, size=2)) for c in CLASSES}
    folders = {}
    for split, count, seed in (("train", 240, 0), ("val", 60, 1)):
        folders[split] = root / split
        write_split(CanvasGenerator("canvas128", str(rule), split, seed, pools[split]), count, folders[split],
                    progress=False)
        relabel(folders[split], references)
    return folders


def batches(folder: Path, size: int):
    dataset = CocoKeypointDataset(folder)
    for start in range(0, len(dataset), size):
        yield collate_detection([dataset[i] for i in range(start, min(start + size, len(dataset)))])


def test_the_search_is_off_the_closed_form_basis_and_the_point_map_learns_it(search_folders):
    torch.manual_seed(0)
    head = ArgmaxPointHead(8, soft_channels=2, point_map=True, map_channels=16, num_classes=10, num_keypoints=1)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    # Annealed as the trainer's schedule is: at a constant rate the offsets keep moving by ~0.3 px.
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=12 * 15, pct_start=0.1)
    features = torch.zeros(16, 8, 32, 32)
    from ocrloc.models.point_map import map_loss

    for epoch in range(12):
        for images, targets in batches(search_folders["train"], 16):
            boxes = [t["boxes"] + (torch.rand_like(t["boxes"]) * 2 - 1) for t in targets]
            labels = torch.cat([t["labels"] for t in targets])
            keypoints = torch.cat([t["keypoints"] for t in targets])
            coords, origin, window, ink_box = head.measure(images, features[:len(images)], boxes)
            maps = head.maps(window, ink_box, labels)
            every_row = torch.arange(labels.shape[0])
            head.update_choice(labels, *head.candidate_errors(head.read(coords, labels, origin), maps, every_row,
                                                              origin, keypoints[..., :2], keypoints[..., 2] > 0))
            head.fit(coords.detach(), labels, origin, keypoints[..., :2], keypoints[..., 2] > 0)
            cell, offset = map_loss(maps, keypoints[..., :2] - origin[:, None, :], keypoints[..., 2] > 0)
            optimizer.zero_grad()
            (cell + offset).backward()
            optimizer.step()
            schedule.step()
    head.eval()
    closed_form, chosen, labels_all = [], [], []
    with torch.no_grad():
        for images, targets in batches(search_folders["val"], 32):
            boxes = [t["boxes"] for t in targets]
            labels = torch.cat([t["labels"] for t in targets])
            truth = torch.cat([t["keypoints"] for t in targets])[:, 0, :2]
            coords, origin, window, ink_box = head.measure(images, torch.zeros(len(images), 8, 32, 32), boxes)
            closed_form.append((head.read(coords, labels, origin)[:, 0] - truth).norm(dim=1))
            chosen.append((head(images, torch.zeros(len(images), 8, 32, 32), boxes, labels)[:, 0] - truth).norm(dim=1))
            labels_all.append(labels)
    closed_form, chosen, labels = torch.cat(closed_form), torch.cat(chosen), torch.cat(labels_all)
    # The closed-form read-out of the ink's extremes, centroid and box cannot give these points ...
    assert closed_form.median() > 0.3, closed_form.median()
    # ... the point map does, from the annotations, and each of the classes chose it. At this
    # budget (180 steps on 240 canvases) most points are exact; the results' stroke rule shows
    # the precision at the comparison's budget (docs/results.md).
    assert head.uses_map()[list(CLASSES)].all()
    for c in CLASSES:
        error = chosen[labels == c]
        assert error.median() < 0.1 and (error < 0.5).float().mean() >= 0.5, (c, error.median(), (error < 0.5).float().mean())
