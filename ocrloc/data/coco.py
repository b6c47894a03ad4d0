"""COCO keypoint files (``docs/task.md``, "Ground-truth and results files"): writing generated splits,
reading any keypoint folder.

A split folder is ``DIR/images/*.png`` (8-bit grey) plus ``DIR/annotations.json``. Image and
annotation ids start at 1: pycocotools' COCOeval marks a detection as matched by storing the
matched ground-truth id, so an annotation id 0 would read as "unmatched".
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

import cv2
import numpy as np
from tqdm import tqdm

from ocrloc.data.canvas import Canvas, CanvasGenerator
from ocrloc.data.points import POINT_NAMES
from ocrloc.data.rules import get_rule
from ocrloc.data.task import digits_task
from ocrloc.utils.errors import worker_error_message
from ocrloc.utils.io import remove_stale_temporaries, umask, writer_tag, write_json_atomic

__all__ = [
    "CATEGORIES",
    "ANNOTATIONS_FILE",
    "IMAGES_DIR",
    "canvas_annotations",
    "split_coco",
    "write_split",
    "check_split_output",
    "remove_stale_temporaries",
    "load_coco",
    "read_coco_json",
    "coco_subset",
    "coco_index",
    "read_grey_image",
    "ImageFileError",
    "read_image_file",
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


def check_split_output(out_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse an output ``out_dir`` that is a file, or a non-empty folder without ``overwrite``
    (:class:`FileExistsError` naming it); nothing is written."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a folder; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; choose another --out or pass --overwrite")


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
    the end, so an interrupted run leaves no half-written split. A run killed outright (no
    ``finally`` runs) leaves its temporary folder; the next write of the same ``out_dir`` removes
    it (:func:`remove_stale_temporaries`).

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

    Raises:
        FileExistsError: ``out_dir`` is a file, or a non-empty folder without ``overwrite``.
        OSError: one line naming ``out_dir`` and the cause when its folder cannot be created or
            written (a full disk); the temporary folder is removed.
    """
    started = time.time()
    out_dir = Path(out_dir)
    check_split_output(out_dir, overwrite)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out_dir, started)
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{writer_tag()}.", suffix=".tmp", dir=out_dir.parent))
    except OSError as err:
        raise OSError(f"{out_dir}: cannot create the output folder ({err.strerror or err}"
                      + (f": {err.filename})" if err.filename else ")")) from None

    def write_png(file_name: str, image: np.ndarray) -> None:
        # Encoded in memory, written by Python: cv2.imwrite only answers False when the disk is full.
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise ValueError(f"{file_name}: OpenCV could not encode the canvas as PNG")
        with open(tmp_dir / file_name, "wb") as f:
            f.write(png.tobytes())

    try:
        if write_images:
            (tmp_dir / IMAGES_DIR).mkdir()
        coco = split_coco(generator, count, write_png if write_images else None, progress)
        write_json_atomic(coco, tmp_dir / ANNOTATIONS_FILE)
        # mkdtemp makes 0700; the split is as readable as a folder mkdir makes (the umask decides).
        os.chmod(tmp_dir, 0o777 & ~umask())
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp_dir, out_dir)
    except OSError as err:  # a full disk: the cause alone (ENOSPC) names no file, the temporary's would mislead
        cause = err.strerror or str(err)
        raise OSError(f"{out_dir}: cannot write the split ({cause})") from None
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)
    return coco


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


def read_grey_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 ``[H, W]`` grey (colour images are converted)."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return image


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
