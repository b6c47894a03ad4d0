"""Running a model over images and writing COCO results (SPEC section 6)."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["detections_to_results", "pad_to_multiple", "predict_batches"]


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


@torch.no_grad()
def predict_batches(model: nn.Module, postprocess: nn.Module, batches: Iterable[Tuple[torch.Tensor, Sequence[int]]],
                    device: torch.device) -> List[Dict[str, Any]]:
    """COCO results for ``(images [B, 1, H, W], image_ids)`` batches."""
    model.eval()
    results: List[Dict[str, Any]] = []
    for images, image_ids in batches:
        detections = postprocess(model(pad_to_multiple(images.to(device))))
        results += detections_to_results(detections, image_ids)
    return results
