"""Writing a data source's split as a COCO keypoints folder (``docs/task.md``, "Ground-truth and results files").

Any :class:`~ocrloc.data.source.DataSource` is written the same way: its samples ``0 .. count-1`` as
``images/NNNNNN.png`` (image id ``index + 1``) and their annotations, categories and ``info`` as the source
gives them. Reading a folder back is :mod:`ocrloc.data.coco`'s part, which imports no generator.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import cv2
import numpy as np
from tqdm import tqdm

from ocrloc.data.coco import ANNOTATIONS_FILE, IMAGES_DIR
from ocrloc.data.source import DataSource
from ocrloc.utils.io import remove_stale_temporaries, umask, writer_tag, write_json_atomic

__all__ = ["split_coco", "write_split", "check_split_output", "remove_stale_temporaries"]


def split_coco(
    source: DataSource,
    count: int,
    image_writer: Optional[Callable[[str, np.ndarray], None]] = None,
    progress: bool = True,
) -> Dict[str, Any]:
    """The COCO dictionary of samples ``0 .. count-1`` of ``source`` (image ``id = index + 1``).

    Args:
        source: the data source (:class:`~ocrloc.data.source.DataSource`): the split's canvas generator.
        count: number of canvases.
        image_writer: called as ``image_writer(file_name, image)`` for each canvas, or None.
        progress: show a tqdm bar.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    images: List[Dict[str, Any]] = []
    annotations: List[Dict[str, Any]] = []
    info = source.info()
    desc = f"{info['split']} canvases" if info.get("split") else "images"
    for index in tqdm(range(count), desc=desc, unit="img", disable=not progress):
        sample = source.sample(index)
        file_name = f"{IMAGES_DIR}/{index:06d}.png"
        if image_writer is not None:
            image_writer(file_name, sample.image)
        height, width = sample.image.shape[:2]
        images.append({"id": index + 1, "file_name": file_name, "width": width, "height": height,
                       "canvas_index": index})
        annotations += source.annotations(sample, index + 1, len(annotations) + 1)
    return {
        "info": {**info, "count": count, "images_written": image_writer is not None},
        "images": images,
        "annotations": annotations,
        "categories": source.categories(),
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
    source: DataSource,
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
        source: the data source (:class:`~ocrloc.data.source.DataSource`): the split's canvas generator.
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
        coco = split_coco(source, count, write_png if write_images else None, progress)
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
