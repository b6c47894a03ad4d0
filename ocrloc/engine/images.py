"""Finding images for prediction and their COCO image ids.

An image in a folder with an ``annotations.json`` in it or in its parent folder (the layout
``make-dataset`` writes: ``SPLIT/annotations.json``, ``SPLIT/images/``) gets the id that file
gives it, so the results score against it; an image that file does not list is an error unless
``unlisted`` says otherwise (a guessed id could be another image's). Without any annotations.json
the images are numbered 1, 2, ... in the order given (each folder's files sorted by name); images
without one given together with images that have one are numbered above every id of those files.

A file given more than once (named twice, or by name and through its folder, or by two paths that
resolve to it) is predicted once, at its first place, with a note: one image id and one set of
detections per distinct file, as detectron2's and ultralytics' predictors list each file once
(two ids for one image would count its detections twice in any evaluation).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ocrloc.data.coco import annotation_file_beside  # the COCO folder layout is the data layer's

__all__ = ["IMAGE_SUFFIXES", "UNLISTED", "annotation_file_beside", "images_and_ids"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: What happens to an image beside an annotations.json that does not list it.
UNLISTED = ("error", "skip", "new-ids")


def _image_files(inputs: Sequence[str | os.PathLike]) -> List[Path]:
    """Every image file named, or inside a named folder (sorted by name), in the order given
    (a file given twice is here twice: see :func:`_distinct`)."""
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
    return paths


def _distinct(paths: List[Path]) -> Tuple[List[Path], List[str]]:
    """``(paths, notes)``: each file once, at its first place (by resolved path), and a note naming
    the repeats."""
    first: Dict[Path, Path] = {}
    repeated: List[str] = []
    for path in paths:
        resolved = path.resolve()
        if resolved in first:
            repeated.append(str(path))
        else:
            first[resolved] = path
    if not repeated:
        return paths, []
    return list(first.values()), [f"{len(repeated)} image(s) given more than once are predicted once, at their "
                                  f"first place (one image id per file): {_few(repeated)}"]


def _listed_ids(annotation: Path) -> Dict[Path, int]:
    """``{resolved image path: id}`` from a COCO file's ``images`` (``file_name`` relative to the
    file's folder). Raises ValueError, one line naming the file and the entry, for a malformed one."""
    try:
        data = json.loads(annotation.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{annotation}: cannot read it ({getattr(err, 'strerror', None) or err})") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{annotation}: invalid JSON ({err.msg} at line {err.lineno} column {err.colno})") from err
    except RecursionError:  # the decoder recurses per level: a crafted file can nest deeper than Python's stack
        raise ValueError(f"{annotation}: invalid JSON (nested too deeply to read)") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{annotation}: not a COCO file (needs an 'images' list of {{'id', 'file_name'}} entries; "
                         f"predict reads it for the image ids)")
    ids: Dict[Path, int] = {}
    for k, image in enumerate(data["images"]):
        if not isinstance(image, dict):
            raise ValueError(f"{annotation}: images[{k}] is a {type(image).__name__}, not an object")
        name, image_id = image.get("file_name"), image.get("id")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{annotation}: images[{k}] has no 'file_name' (a non-empty string)")
        # bool is an int subclass; an id of true is a mistake, not 1.
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            raise ValueError(f"{annotation}: images[{k}] ({name}) has no integer 'id' (got {image_id!r})")
        ids[(annotation.parent / name).resolve()] = image_id
    return ids


def images_and_ids(inputs: Sequence[str | os.PathLike], unlisted: str = "error"
                   ) -> Tuple[List[Tuple[Path, int]], List[str]]:
    """``([(path, image_id), ...], notes)`` for ``ocrloc predict --images`` (see the module doc). ``unlisted``: what happens to an image its annotations.json does not list
    (:data:`UNLISTED`). The ids given never collide: two files with one id are an error; one file
    given twice is listed once (a note says so).

    Raises:
        FileNotFoundError: a path that does not exist, or a folder without images.
        ValueError: one line naming the file: a malformed annotations.json, an image it does not
            list (``unlisted="error"``), two images given one id, or nothing left to predict.
    """
    if unlisted not in UNLISTED:
        raise ValueError(f"--unlisted must be one of {', '.join(UNLISTED)}, got {unlisted!r}")
    paths, repeats = _distinct(_image_files(inputs))
    annotation_of = {folder: annotation_file_beside(folder) for folder in dict.fromkeys(p.parent for p in paths)}
    listed = {a: _listed_ids(a) for a in dict.fromkeys(a for a in annotation_of.values() if a is not None)}
    if not listed:  # no annotation file: numbered in the order given, as always
        return [(p, k + 1) for k, p in enumerate(paths)], repeats
    # Images no annotation file lists get ids above all of theirs, so they cannot take a listed one.
    next_id = max((i for ids in listed.values() for i in ids.values()), default=0) + 1
    first_new = next_id
    chosen: List[Tuple[Path, int]] = []
    skipped: Dict[Path, List[str]] = {}
    renumbered: List[str] = []
    owner: Dict[int, Tuple[Path, Optional[Path]]] = {}  # id -> (image, the annotation file that gave it)
    for path in paths:
        annotation = annotation_of[path.parent]
        resolved = path.resolve()
        if annotation is not None and resolved in listed[annotation]:
            image_id = listed[annotation][resolved]
        elif annotation is not None and unlisted == "error":
            raise ValueError(f"{path}: not listed in {annotation}, so it has no image id (a guessed one could be "
                             f"another image's); pass --unlisted skip or --unlisted new-ids")
        elif annotation is not None and unlisted == "skip":
            skipped.setdefault(annotation, []).append(path.name)
            continue
        else:  # no annotation file of its own, or --unlisted new-ids
            image_id, next_id = next_id, next_id + 1
            renumbered.append(path.name)
            annotation = None
        if image_id in owner and owner[image_id][0].resolve() != resolved:
            other, other_annotation = owner[image_id]
            raise ValueError(f"image id {image_id} is given to both {other} (by {other_annotation}) and {path} "
                             f"(by {annotation}); predict images of different annotation files in separate runs")
        owner.setdefault(image_id, (path, annotation))
        chosen.append((path, image_id))
    notes = repeats + [f"skipped {len(names)} image(s) not listed in {annotation} (--unlisted skip): {_few(names)}"
             for annotation, names in skipped.items()]
    if renumbered:
        ids = f"id {first_new}" if next_id - first_new == 1 else f"ids {first_new}..{next_id - 1}"
        notes.append(f"{len(renumbered)} image(s) no annotations.json lists got new {ids}, above every id of "
                     f"{', '.join(str(a) for a in listed)}: {_few(renumbered)}")
    if not chosen:
        raise ValueError(f"no images left to predict: {notes[0] if notes else 'none given'}")
    return chosen, notes


def _few(names: List[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
