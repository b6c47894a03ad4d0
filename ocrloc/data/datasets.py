"""Torch datasets: a COCO keypoints folder on disk, or canvases generated on the fly.

Both yield ``(image, target)`` in the torchvision detection convention (:mod:`ocrloc.data.target`):

* ``image``: FloatTensor ``[1, H, W]`` in [0, 1];
* ``target``: ``boxes`` FloatTensor ``[N, 4]`` xyxy, ``labels`` Int64Tensor ``[N]``,
  ``keypoints`` FloatTensor ``[N, K, 3]`` (x, y, visibility; K = 1 for ocrloc's files),
  ``area`` FloatTensor ``[N]``, ``iscrowd`` Int64Tensor ``[N]``, and ``image_id`` (int).

This module imports no generator: reading a COCO folder never loads the MNIST or glyph code. The generated
canvases reach :class:`SyntheticCanvasDataset` as a :class:`~ocrloc.data.source.DataSource`, built by
:mod:`ocrloc.data.build`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ocrloc.data.coco import ANNOTATIONS_FILE, ImageFileError, coco_index, read_coco_json, read_image_file
from ocrloc.data.source import DataSource
from ocrloc.data.target import Target, detection_target, image_tensor
from ocrloc.data.task import Task

__all__ = ["Target", "detection_target", "image_tensor", "CocoImage", "CocoKeypointDataset", "InMemoryCocoDataset",
           "SyntheticCanvasDataset", "collate_detection", "ImageFileError"]


@dataclass
class CocoImage:
    """One image of a COCO folder with its annotations (a :class:`CocoKeypointDataset` sample)."""

    image: np.ndarray
    image_id: int
    annotations: List[Dict[str, Any]]

class CocoKeypointDataset(Dataset):
    """Any COCO keypoints folder or file: ocrloc's generated splits or your own data.

    Images are read as grey (colour files are converted), since ocrloc's models take one channel.
    The file's ``categories`` define the task (:attr:`task`): any category ids (1-based, gaps)
    become contiguous class indices in the targets' ``labels``, and every instance's keypoints
    are padded to the dataset's largest keypoint count K (``keypoints [N, K, 3]``).

    Args:
        path: a split folder holding ``annotations.json``, or the annotation file itself.
        image_dir: where ``file_name`` paths are relative to; by default the annotation
            file's folder.
    """

    def __init__(self, path: str | os.PathLike, image_dir: Optional[str | os.PathLike] = None) -> None:
        path = Path(path)
        self.annotation_file = path / ANNOTATIONS_FILE if path.is_dir() else path
        dataset = read_coco_json(self.annotation_file)
        # The evaluator's checks, so a training folder is held to what it will be scored against:
        # ids, keypoint counts per category, boxes and keypoints inside their image (one line, naming
        # the entry). They run before pycocotools indexes the file, which meets a missing key with a bare KeyError.
        from ocrloc.evaluation.inputs import EvaluationInputError, check_ground_truth, image_file

        check_ground_truth(dataset, str(self.annotation_file))
        self.image_dir = Path(image_dir) if image_dir is not None else self.annotation_file.parent
        for i, im in enumerate(dataset["images"]):
            if not isinstance(im.get("file_name"), str) or not im["file_name"]:
                raise EvaluationInputError(
                    f"{self.annotation_file}: images[{i}]: needs a 'file_name' (the image's path relative to the "
                    f"annotation file's folder), got {im.get('file_name')!r}")
            image_file(self.image_dir, im["file_name"], f"{self.annotation_file}: images[{i}]")  # inside the folder
        self.coco = coco_index(dataset)
        self.image_ids: List[int] = sorted(self.coco.getImgIds())
        self.task: Task = Task.from_categories(self.coco.dataset.get("categories", []), source=str(self.annotation_file))

    def __len__(self) -> int:
        return len(self.image_ids)

    def _image(self, image_id: int) -> np.ndarray:
        """Image ``image_id``, read and checked against its entry (see :meth:`__getitem__`)."""
        info = self.coco.imgs[image_id]
        image_path = self.image_dir / info["file_name"]
        image = read_image_file(image_path)
        height, width = image.shape
        if (width, height) != (info["width"], info["height"]):
            raise ImageFileError(f"{image_path}: image is {width} x {height} px but {self.annotation_file} declares "
                                 f"{info['width']} x {info['height']} for image {image_id}")
        return image

    def check_images(self, progress: bool = False, desc: str = "check images") -> None:
        """Read every image once, as :meth:`__getitem__` will: each must decode and have the size
        its entry declares. The trainer calls this before it writes anything, so a bad file fails
        the start rather than the step that first samples it (hours in, perhaps); it decodes each
        file fully (a truncated PNG has a good header), which costs 0.1-0.3 ms per 128 x 128 canvas
        (1-2.5 s for 8,000 on 2 cores shared with other jobs, files in the page cache).

        Raises:
            ImageFileError: the first bad image, as :meth:`__getitem__` names it.
        """
        from tqdm import tqdm

        for image_id in tqdm(self.image_ids, desc=desc, unit="img", disable=not progress, leave=False):
            self._image(image_id)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, Target]:
        """Image ``index`` (in image-id order) and its target.

        Raises:
            ImageFileError: one line naming the image file: it cannot be read (missing, corrupt,
                truncated) or its pixel size differs from the ``width`` x ``height`` of its entry
                (its boxes and points would be checked against the wrong size). Checked here, per
                item, so that constructing a dataset of 100,000 images does not decode them all.
        """
        sample = self.sample(index)
        return image_tensor(sample.image), self.target(sample, sample.image_id)

    # -- the data source protocol (ocrloc.data.source) -------------------------------------------------

    rule = None  # the annotations define the points
    preset = None  # not generated

    @property
    def image_size(self) -> Optional[Tuple[int, int]]:
        """``(height, width)``: the largest of the file's images (what a model trained on it has seen)."""
        sizes = [(int(im["height"]), int(im["width"])) for im in self.coco.dataset.get("images", [])
                 if "height" in im and "width" in im]
        return (max(h for h, _ in sizes), max(w for _, w in sizes)) if sizes else None

    def sample(self, index: int) -> CocoImage:
        """Image ``index`` (in image-id order), read and checked (see :meth:`__getitem__`), and its annotations."""
        image_id = self.image_ids[index]
        return CocoImage(self._image(image_id), image_id, list(self.coco.imgToAnns.get(image_id, [])))

    def target(self, sample: CocoImage, image_id: int) -> Target:
        anns = sample.annotations
        return detection_target(
            [a["bbox"] for a in anns],
            [self.task.index(a["category_id"]) for a in anns],
            [a.get("keypoints", []) for a in anns],
            image_id,
            iscrowd=[a.get("iscrowd", 0) for a in anns],
            area=[a.get("area", a["bbox"][2] * a["bbox"][3]) for a in anns],
            num_keypoints=self.task.num_keypoints,
        )

    def annotations(self, sample: CocoImage, image_id: int, first_annotation_id: int) -> List[Dict[str, Any]]:
        """The file's annotations of ``sample``, renumbered as image ``image_id`` (copies; the file's stay)."""
        return [{**a, "id": first_annotation_id + k, "image_id": image_id} for k, a in enumerate(sample.annotations)]

    def categories(self) -> List[Dict[str, Any]]:
        return list(self.coco.dataset.get("categories", []))

    def info(self) -> Dict[str, Any]:
        return {"description": f"images of {self.annotation_file}", "preset": None, "rule": None, "split": None,
                "seed": None}


class InMemoryCocoDataset(Dataset):
    """A COCO keypoints dict and its images held in memory (``file_name`` -> uint8 ``[H, W]``):
    a generated validation split made once, whose targets are exactly the ground truth it is
    scored against.

    Args:
        coco: COCO keypoints dict (``images``, ``annotations``).
        images: the image of every ``file_name``.
    """

    def __init__(self, coco: Dict[str, Any], images: Dict[str, np.ndarray]) -> None:
        self.task = Task.from_categories(coco.get("categories", []), source="in-memory split")
        self.infos = sorted(coco["images"], key=lambda im: im["id"])
        missing = [im["file_name"] for im in self.infos if im["file_name"] not in images]
        if missing:
            raise ValueError(f"no image for {missing[0]} (and {len(missing) - 1} more)")
        self.images = images
        self.annotations: Dict[int, List[Dict[str, Any]]] = {im["id"]: [] for im in self.infos}
        for ann in coco["annotations"]:
            self.annotations[ann["image_id"]].append(ann)

    def __len__(self) -> int:
        return len(self.infos)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, Target]:
        info = self.infos[index]
        anns = self.annotations[info["id"]]
        target = detection_target([a["bbox"] for a in anns], [self.task.index(a["category_id"]) for a in anns],
                                  [a["keypoints"] for a in anns], info["id"],
                                  iscrowd=[a.get("iscrowd", 0) for a in anns], area=[a["area"] for a in anns],
                                  num_keypoints=self.task.num_keypoints)
        return image_tensor(self.images[info["file_name"]]), target


class SyntheticCanvasDataset(Dataset):
    """Canvases generated on demand: item ``i`` is canvas ``i`` (image id ``i + 1``, as in a written split).

    With ``resample_each_epoch``, :meth:`set_epoch` shifts to fresh canvases
    (``epoch * length + i``), as ``DistributedSampler.set_epoch`` does for order. DataLoader
    workers see the new epoch when they are created anew each epoch (``persistent_workers=False``).

    Args:
        generator: the canvas generator of the split (a :class:`~ocrloc.data.source.DataSource`).
        length: canvases per epoch.
        resample_each_epoch: False gives the same canvases every epoch.
    """

    def __init__(self, generator: DataSource, length: int, resample_each_epoch: bool = False) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.generator = generator
        self.task = generator.task
        self.length = length
        self.resample_each_epoch = resample_each_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, Target]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} canvases")
        canvas_index = index + (self.epoch * self.length if self.resample_each_epoch else 0)
        canvas = self.generator.sample(canvas_index)
        return image_tensor(canvas.image), self.generator.target(canvas, canvas_index + 1)


def collate_detection(batch: Sequence[Tuple[torch.Tensor, Target]]) -> Tuple[torch.Tensor, List[Target]]:
    """Batch images into one ``[B, C, H, W]`` tensor; targets stay a list.

    Images of different sizes (a COCO folder may mix them) are zero-padded at the right and bottom
    to the largest height and width of the batch, as torchvision's and detectron2's ``ImageList``
    do: every image keeps its top-left corner at (0, 0), so its boxes and points are unchanged.
    """
    images = [item[0] for item in batch]
    targets = [item[1] for item in batch]
    if all(img.shape == images[0].shape for img in images):
        return torch.stack(images), targets
    channels = {img.shape[0] for img in images}
    if len(channels) != 1:
        raise ValueError(f"cannot batch images with {sorted(channels)} channels together")
    height = max(img.shape[1] for img in images)
    width = max(img.shape[2] for img in images)
    out = images[0].new_zeros((len(images), images[0].shape[0], height, width))
    for i, img in enumerate(images):
        out[i, :, :img.shape[1], :img.shape[2]] = img
    return out, targets
