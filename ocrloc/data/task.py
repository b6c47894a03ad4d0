"""The task a dataset defines: its classes (ids and names) and the named keypoints of each class.

COCO keypoint files say it in ``categories``: ``{"id", "name", "keypoints": [names]}``. Inside
ocrloc, classes are contiguous indices ``0 .. C-1`` (what a classifier's logits index) and every
class has ``K = max K_c`` keypoint slots (a class with fewer keypoints leaves the rest
invisible); :class:`Task` maps both ways, so every output carries the file's own category ids
again. Checkpoints and exported files carry it (``meta["task"]``).

The MNIST canvases are one task among others: :func:`digits_task`, ten classes with ids 0-9 and
one keypoint, ``point`` (``docs/task.md``, "Ground-truth and results files").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

__all__ = ["Task", "digits_task"]


@dataclass(frozen=True)
class Task:
    """Classes and keypoints, in the dataset's own terms.

    Attributes:
        class_ids: the dataset's category id of each class index.
        class_names: the name of each class.
        keypoint_names: the keypoint names of each class (``K_c >= 1`` each).
    """

    class_ids: Tuple[int, ...]
    class_names: Tuple[str, ...]
    keypoint_names: Tuple[Tuple[str, ...], ...]

    def __post_init__(self) -> None:
        n = len(self.class_ids)
        if n == 0:
            raise ValueError("a task needs at least one class")
        if len(self.class_names) != n or len(self.keypoint_names) != n:
            raise ValueError(f"class ids ({n}), names ({len(self.class_names)}) and keypoint lists "
                             f"({len(self.keypoint_names)}) must have one entry per class")
        if len(set(self.class_ids)) != n:
            raise ValueError(f"duplicate category ids in {list(self.class_ids)}")
        for cid, names in zip(self.class_ids, self.keypoint_names):
            if not names:
                raise ValueError(f"category {cid} names no keypoints")

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    @property
    def num_keypoints(self) -> int:
        """K: keypoint slots per class (the largest ``K_c``)."""
        return max(len(names) for names in self.keypoint_names)

    def index(self, category_id: int) -> int:
        """The class index of a dataset category id.

        Raises:
            KeyError: naming the id and the known ones.
        """
        try:
            return self._index[int(category_id)]
        except KeyError:
            raise KeyError(f"category id {category_id} is not one of the dataset's {list(self.class_ids)}") from None

    @functools.cached_property
    def _index(self) -> Dict[int, int]:
        return {cid: k for k, cid in enumerate(self.class_ids)}

    @classmethod
    def from_categories(cls, categories: Sequence[Mapping[str, Any]], source: str = "categories") -> "Task":
        """From COCO ``categories`` (sorted by id: the class index order).

        Raises:
            ValueError: naming ``source`` and the category, for a missing id or keypoint list.
        """
        entries = []
        for k, cat in enumerate(categories):
            if "id" not in cat:
                raise ValueError(f"{source}: category {k} has no id")
            keypoints = cat.get("keypoints")
            if not isinstance(keypoints, list) or not keypoints:
                raise ValueError(f"{source}: category {cat['id']} ({cat.get('name', '?')!r}) names no keypoints "
                                 f"(COCO keypoint files list them in categories[].keypoints)")
            entries.append((int(cat["id"]), str(cat.get("name", cat["id"])), tuple(str(n) for n in keypoints)))
        entries.sort()
        try:
            return cls(tuple(e[0] for e in entries), tuple(e[1] for e in entries), tuple(e[2] for e in entries))
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    def categories(self, supercategory: str = "") -> List[Dict[str, Any]]:
        """COCO ``categories`` of this task."""
        return [{"id": cid, "name": name, "supercategory": supercategory, "keypoints": list(kps), "skeleton": []}
                for cid, name, kps in zip(self.class_ids, self.class_names, self.keypoint_names)]

    def to_dict(self) -> Dict[str, Any]:
        """Plain data for checkpoints and exported files."""
        return {"class_ids": list(self.class_ids), "class_names": list(self.class_names),
                "keypoint_names": [list(k) for k in self.keypoint_names]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Task":
        return cls(tuple(int(i) for i in data["class_ids"]), tuple(str(n) for n in data["class_names"]),
                   tuple(tuple(str(n) for n in k) for k in data["keypoint_names"]))


def digits_task() -> Task:
    """The MNIST canvases' task: digits 0-9 (category id = digit), one keypoint ``point`` each."""
    return Task(tuple(range(10)), tuple(str(k) for k in range(10)), (("point",),) * 10)
