"""The target of one image in the torchvision detection convention, and the image as a tensor.

* ``image``: FloatTensor ``[1, H, W]`` in [0, 1] (:func:`image_tensor`);
* ``target``: ``boxes`` FloatTensor ``[N, 4]`` xyxy, ``labels`` Int64Tensor ``[N]`` (class indices of the
  data's :class:`~ocrloc.data.task.Task`), ``keypoints`` FloatTensor ``[N, K, 3]`` (x, y, visibility),
  ``area`` FloatTensor ``[N]``, ``iscrowd`` Int64Tensor ``[N]``, and ``image_id`` (int).

Every data source builds its targets here (:mod:`ocrloc.data.source`), so the generated canvases and a COCO
folder hand the models the same thing.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from torchvision.ops import box_convert

__all__ = ["Target", "detection_target", "image_tensor"]

Target = Dict[str, Any]


def detection_target(
    boxes_xywh: Sequence[Sequence[float]],
    labels: Sequence[int],
    keypoints: Sequence[Sequence[float]],
    image_id: int,
    iscrowd: Optional[Sequence[int]] = None,
    area: Optional[Sequence[float]] = None,
    num_keypoints: Optional[int] = None,
) -> Target:
    """Build one target dict from COCO-style fields.

    Args:
        boxes_xywh: ``[N, 4]`` COCO boxes.
        labels: ``[N]`` class ids.
        keypoints: ``[N, 3K]`` flat COCO keypoints (x, y, v, ...).
        image_id: COCO image id.
        iscrowd: ``[N]``, zeros when None.
        area: ``[N]``, box areas when None.
        num_keypoints: K: each instance's keypoints padded with invisible ``(0, 0, 0)`` to K
            (a class with fewer keypoints than the dataset's largest); None keeps them as given.
    """
    n = len(labels)
    boxes = torch.as_tensor(np.asarray(boxes_xywh, dtype=np.float32).reshape(n, 4))
    if num_keypoints is not None:
        kps = np.zeros((n, 3 * num_keypoints), dtype=np.float32)
        for i, flat in enumerate(keypoints):
            if len(flat) % 3 or len(flat) > 3 * num_keypoints:
                raise ValueError(f"image {image_id}: annotation {i} has {len(flat)} keypoint numbers; expected (x, y, v) "
                                 f"triples, at most {num_keypoints}")
            kps[i, :len(flat)] = flat
    elif n:
        kps = np.asarray(keypoints, dtype=np.float32).reshape(n, -1)
    else:  # an image without annotations: no K to infer from (numpy cannot reshape 0 values by -1)
        kps = np.zeros((0, 3), dtype=np.float32)
    if kps.shape[1] % 3:
        raise ValueError(f"image {image_id}: keypoints must hold (x, y, v) triples, got {kps.shape[1]} numbers")
    return {
        "boxes": box_convert(boxes, "xywh", "xyxy"),
        "labels": torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(n)),
        "keypoints": torch.as_tensor(kps.reshape(n, kps.shape[1] // 3, 3)),
        "area": torch.as_tensor(np.asarray(area, dtype=np.float32)) if area is not None else boxes[:, 2] * boxes[:, 3],
        "iscrowd": torch.as_tensor(np.asarray(iscrowd if iscrowd is not None else [0] * n, dtype=np.int64)),
        "image_id": int(image_id),
    }


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """A uint8 ``[H, W]`` grey image -> FloatTensor ``[1, H, W]`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).unsqueeze(0).float().div_(255.0)
