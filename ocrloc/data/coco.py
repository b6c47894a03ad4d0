"""COCO keypoint files (``docs/task.md``, "Ground-truth and results files"): reading any keypoint folder.

A split folder is ``DIR/images/*.png`` (8-bit grey) plus ``DIR/annotations.json``. Image and
annotation ids start at 1: pycocotools' COCOeval marks a detection as matched by storing the
matched ground-truth id, so an annotation id 0 would read as "unmatched".
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional

import cv2
import numpy as np

from ocrloc.utils.errors import worker_error_message

__all__ = [
    "ANNOTATIONS_FILE",
    "IMAGES_DIR",
    "annotation_file_beside",
    "load_coco",
    "read_coco_json",
    "coco_subset",
    "coco_index",
    "ImageFileError",
    "read_image_file",
]

ANNOTATIONS_FILE = "annotations.json"
IMAGES_DIR = "images"


def annotation_file_beside(folder: Path) -> Optional[Path]:
    """The annotations.json that describes the images of ``folder``: in it, or in its parent
    (make-dataset's SPLIT/images/ + SPLIT/annotations.json)."""
    for candidate in (folder / ANNOTATIONS_FILE, folder.parent / ANNOTATIONS_FILE):
        if candidate.is_file():
            return candidate
    return None

def coco_subset(coco: Mapping[str, Any], image_ids: Iterable[int]) -> Dict[str, Any]:
    """The images of ``image_ids``, their annotations and every category of a COCO dict (new lists, the
    entries shared); entries without an ``id`` / ``image_id`` are left out, a missing list is empty."""
    ids = set(image_ids)
    return {"images": [im for im in coco["images"] if im.get("id") in ids],
            "annotations": [a for a in coco.get("annotations", []) if a.get("image_id") in ids],
            "categories": coco.get("categories", [])}


def read_coco_json(annotation_file: str | os.PathLike) -> Any:
    """The parsed JSON of a COCO file (not yet checked: see :func:`~ocrloc.evaluation.inputs.check_ground_truth`).

    Raises:
        FileNotFoundError: naming the file.
        ValueError: naming the file when it is not readable UTF-8 JSON.
    """
    path = Path(annotation_file)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{path}: not a valid COCO annotation file ({type(err).__name__}: {err})") from None
    except RecursionError:  # the decoder recurses per level: a crafted file can nest deeper than Python's stack
        raise ValueError(f"{path}: not a valid COCO annotation file (JSON nested too deeply to read)") from None


def coco_index(dataset: dict):
    """A pycocotools ``COCO`` over an already-loaded (and checked) dict, without its progress prints."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def load_coco(annotation_file: str | os.PathLike):
    """Load a COCO file with pycocotools, without its progress prints.

    Raises:
        FileNotFoundError: naming the file.
        ValueError: naming the file when it is not valid COCO JSON.
    """
    path = Path(annotation_file)
    dataset = read_coco_json(path)
    if not isinstance(dataset, dict):
        raise ValueError(f"{path}: not a valid COCO annotation file (not a JSON object)")
    try:
        return coco_index(dataset)
    except (ValueError, KeyError, TypeError, AssertionError) as err:
        raise ValueError(f"{path}: not a valid COCO annotation file ({type(err).__name__}: {err})") from None


class ImageFileError(ValueError):
    """An image of a COCO folder that cannot be read or does not match its annotation entry.

    The message is one line, ``"{image path}: ..."``. A DataLoader worker's exception comes back to
    the main process re-raised as ``type(err)(worker traceback as text)``; this class keeps only the
    original line of that text, so ``str(err)`` is the same one line with or without workers.
    """

    def __init__(self, message: str) -> None:
        super().__init__(worker_error_message(message))


def read_image_file(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 ``[H, W]`` grey (colour images are converted).

    Raises:
        ImageFileError: ``"{path}: cannot read image ({reason})"`` for a missing, unreadable, empty or
            undecodable (corrupt, truncated, unknown format) file.
    """
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError:
        raise ImageFileError(f"{path}: cannot read image (no such file)") from None
    except OSError as err:
        raise ImageFileError(f"{path}: cannot read image ({err.strerror or err})") from None
    if data.size == 0:
        raise ImageFileError(f"{path}: cannot read image (empty file)")
    # OpenCV logs its own warning for a truncated file on stderr; the error below says it in one line.
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    except cv2.error:
        image = None
    finally:
        cv2.utils.logging.setLogLevel(level)
    if image is None:
        raise ImageFileError(f"{path}: cannot read image (corrupt, truncated or not an image format OpenCV decodes)")
    return image
