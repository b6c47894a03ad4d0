"""Running a model over images and writing COCO results (SPEC section 6)."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import torch
import torch.nn.functional as F

__all__ = ["detections_to_results", "pad_to_multiple"]


def detections_to_results(detections: Sequence[Dict[str, torch.Tensor]], image_ids: Sequence[int]) -> List[Dict[str, Any]]:
    """Postprocessed detections -> the COCO results list (``bbox`` as ``[x, y, w, h]``, keypoint
    visibility = the detection's score)."""
    results: List[Dict[str, Any]] = []
    for det, image_id in zip(detections, image_ids):
        boxes = det["boxes"].detach().cpu().tolist()
        scores = det["scores"].detach().cpu().tolist()
        labels = det["labels"].detach().cpu().tolist()
        points = det["keypoints"].detach().cpu()[:, 0, :2].tolist()
        for (x1, y1, x2, y2), score, label, (px, py) in zip(boxes, scores, labels, points):
            results.append({
                "image_id": int(image_id),
                "category_id": int(label),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(score),
                "keypoints": [px, py, float(score)],
            })
    return results


def pad_to_multiple(images: torch.Tensor, multiple: int = 32) -> torch.Tensor:
    """Pad ``[B, C, H, W]`` on the bottom and right with zeros (black background) to multiples of
    ``multiple``; coordinates are unchanged."""
    h, w = images.shape[-2:]
    pad_h = (-h) % multiple
    pad_w = (-w) % multiple
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h))
    return images
