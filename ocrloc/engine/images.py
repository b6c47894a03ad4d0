"""Finding images for prediction and their COCO image ids."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

__all__ = ["IMAGE_SUFFIXES", "collect_images"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def collect_images(inputs: Sequence[str | os.PathLike]) -> List[Tuple[Path, int]]:
    """``(path, image_id)`` for every image file named or inside a named folder, sorted by path.

    Image ids come from the COCO file that describes the images when there is one (an
    ``annotations.json`` beside the folder, as :func:`~ocrloc.data.coco.write_split` lays
    it out), so results score against that ground truth; otherwise they count from 1.

    Raises:
        FileNotFoundError: naming a path that does not exist or a folder without images.
    """
    paths: List[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {item}")
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"no such image or folder: {item}")
    ids = _ids_from_coco(paths)
    return [(p, ids.get(p.resolve(), k + 1)) for k, p in enumerate(paths)]


def _ids_from_coco(paths: List[Path]) -> Dict[Path, int]:
    ids: Dict[Path, int] = {}
    for folder in {p.parent for p in paths}:
        for candidate in (folder / "annotations.json", folder.parent / "annotations.json"):
            if candidate.is_file():
                images = json.loads(candidate.read_text()).get("images", [])
                ids.update({(candidate.parent / im["file_name"]).resolve(): int(im["id"]) for im in images})
                break
    return ids
