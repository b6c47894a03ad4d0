"""COCO keypoint files (SPEC section 6): writing generated splits, reading any keypoint folder.

A split folder is ``DIR/images/*.png`` (8-bit grey) plus ``DIR/annotations.json``. Image and
annotation ids start at 1: pycocotools' COCOeval marks a detection as matched by storing the
matched ground-truth id, so an annotation id 0 would read as "unmatched".
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import cv2
import numpy as np
from tqdm import tqdm

from ocrloc.data.canvas import Canvas, CanvasGenerator
from ocrloc.data.points import POINT_NAMES
from ocrloc.data.rules import get_rule
from ocrloc.data.task import digits_task
from ocrloc.utils.io import write_json_atomic

__all__ = [
    "CATEGORIES",
    "ANNOTATIONS_FILE",
    "IMAGES_DIR",
    "canvas_annotations",
    "split_coco",
    "write_split",
    "load_coco",
    "read_grey_image",
]

ANNOTATIONS_FILE = "annotations.json"
IMAGES_DIR = "images"

CATEGORIES: List[Dict[str, Any]] = digits_task().categories(supercategory="digit")


def canvas_annotations(canvas: Canvas, rule: str, image_id: int, first_annotation_id: int) -> List[Dict[str, Any]]:
    """COCO annotations of one canvas: the rule's point in ``keypoints``, all seven as ``points``.

    Args:
        canvas: a generated canvas.
        rule: rule name, picks the point per class.
        image_id: the canvas's COCO image id.
        first_annotation_id: id of its first annotation (ids are consecutive).
    """
    table = get_rule(rule)
    annotations = []
    for k, digit in enumerate(canvas.digits):
        x, y = digit.points[table[digit.label]]
        w, h = digit.bbox[2], digit.bbox[3]
        annotations.append(
            {
                "id": first_annotation_id + k,
                "image_id": image_id,
                "category_id": digit.label,
                "bbox": [float(v) for v in digit.bbox],
                "area": float(w * h),
                "keypoints": [x, y, 2],
                "num_keypoints": 1,
                "iscrowd": 0,
                "point_name": table[digit.label],
                "points": {name: list(digit.points[name]) for name in POINT_NAMES},
                "mnist_index": digit.source_index,
                "digit_size": digit.size,
            }
        )
    return annotations


def split_coco(
    generator: CanvasGenerator,
    count: int,
    image_writer: Optional[Callable[[str, np.ndarray], None]] = None,
    progress: bool = True,
) -> Dict[str, Any]:
    """The COCO dictionary of canvases ``0 .. count-1`` (image ``id = index + 1``).

    Args:
        generator: the split's canvas generator.
        count: number of canvases.
        image_writer: called as ``image_writer(file_name, image)`` for each canvas, or None.
        progress: show a tqdm bar.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    from ocrloc.data.glyphs import GlyphCanvasGenerator, glyph_annotations

    glyphs = isinstance(generator, GlyphCanvasGenerator)
    rule = None if glyphs else generator.rule
    images: List[Dict[str, Any]] = []
    annotations: List[Dict[str, Any]] = []
    preset = generator.preset
    for index in tqdm(range(count), desc=f"{generator.split} canvases", unit="img", disable=not progress):
        canvas = generator(index)
        file_name = f"{IMAGES_DIR}/{index:06d}.png"
        if image_writer is not None:
            image_writer(file_name, canvas.image)
        images.append({"id": index + 1, "file_name": file_name, "width": preset.width,
                       "height": preset.height, "canvas_index": index})
        if glyphs:
            annotations += glyph_annotations(canvas, index + 1, len(annotations) + 1)
        else:
            annotations += canvas_annotations(canvas, generator.rule, index + 1, len(annotations) + 1)
    return {
        "info": {
            "description": "ocrloc printed-glyph canvases" if glyphs else "ocrloc MNIST canvases",
            "preset": preset.name,
            "rule": rule,
            "split": generator.split,
            "seed": generator.seed,
            "count": count,
            "images_written": image_writer is not None,
        },
        "images": images,
        "annotations": annotations,
        "categories": generator.task.categories("character" if glyphs else "digit"),
    }


def write_split(
    generator: CanvasGenerator,
    count: int,
    out_dir: str | os.PathLike,
    write_images: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> Dict[str, Any]:
    """Generate canvases ``0 .. count-1`` and write them as a COCO keypoints folder.

    Everything is written into a temporary folder beside ``out_dir`` and renamed onto it at
    the end, so an interrupted run leaves no half-written split.

    Args:
        generator: the split's canvas generator.
        count: number of canvases.
        out_dir: destination folder (``images/`` and ``annotations.json`` inside).
        write_images: write the PNGs; False writes the annotations only (faster, for timing
            or when the canvases will be regenerated on the fly).
        overwrite: replace an existing split folder.
        progress: show a tqdm bar.

    Returns:
        The COCO dictionary that was written.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; choose another --out or pass --overwrite")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))

    def write_png(file_name: str, image: np.ndarray) -> None:
        if not cv2.imwrite(str(tmp_dir / file_name), image):
            raise OSError(f"could not write {tmp_dir / file_name}")

    try:
        if write_images:
            (tmp_dir / IMAGES_DIR).mkdir()
        coco = split_coco(generator, count, write_png if write_images else None, progress)
        write_json_atomic(coco, tmp_dir / ANNOTATIONS_FILE)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp_dir, out_dir)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)
    return coco


def load_coco(annotation_file: str | os.PathLike):
    """Load a COCO file with pycocotools, without its progress prints.

    Raises:
        FileNotFoundError: naming the file.
        ValueError: naming the file when it is not valid COCO JSON.
    """
    from pycocotools.coco import COCO

    path = Path(annotation_file)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except (ValueError, KeyError, TypeError, AssertionError) as err:
        raise ValueError(f"{path}: not a valid COCO annotation file ({type(err).__name__}: {err})") from None


def read_grey_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 ``[H, W]`` grey (colour images are converted)."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return image
