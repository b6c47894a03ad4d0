"""The one predict loop: a predictor over batches, detections as COCO results (``docs/task.md``,
"Ground-truth and results files").

Validation, ``compare``, the head study, ``ocrloc predict`` and :class:`ocrloc.Predictor`
all run :func:`iterate_predictions` (or :func:`predict_results`, which collects it), so images
are padded to the predictor's input rule (:func:`ocrloc.preprocess.pad_to_rule`, the one input path's)
and targets moved to the device in this one place; :func:`detections_to_results` is the one writer
of COCO results (``Detections.to_coco`` and ``ocrloc predict`` call it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch

# The padding is the one input path's (ocrloc.preprocess), named here too for the loop's callers.
from ocrloc.preprocess import pad_to_multiple, pad_to_rule

if TYPE_CHECKING:
    from ocrloc.data.task import Task

__all__ = ["detections_to_results", "iterate_predictions", "pad_to_multiple", "pad_to_rule",
           "predict_results", "to_device"]

Batch = Tuple[torch.Tensor, List[Dict[str, Any]]]


def to_device(images: torch.Tensor, targets: Sequence[Dict[str, Any]], device: torch.device,
              non_blocking: bool = False) -> Batch:
    """Images and every tensor of every target on ``device`` (other values, e.g. ``image_id``, kept)."""
    moved = [{k: v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v for k, v in t.items()}
             for t in targets]
    return images.to(device, non_blocking=non_blocking), moved


def detections_to_results(detections: Sequence[Dict[str, torch.Tensor]], image_ids: Sequence[int],
                          task: Optional["Task"] = None) -> List[Dict[str, Any]]:
    """Detections -> the COCO results list (``bbox`` as ``[x, y, w, h]``, each keypoint's
    visibility = the detection's score).

    ``task`` maps class indices back to the dataset's category ids and keeps each class's own
    keypoints (``K_c`` of the K slots); None: category id = class index, every keypoint kept.
    """
    results: List[Dict[str, Any]] = []
    for det, image_id in zip(detections, image_ids):
        boxes = det["boxes"].detach().cpu().tolist()
        scores = det["scores"].detach().cpu().tolist()
        labels = det["labels"].detach().cpu().tolist()
        keypoints = det["keypoints"].detach().cpu()[..., :2].tolist()  # [N, K, 2]
        for (x1, y1, x2, y2), score, label, points in zip(boxes, scores, labels, keypoints):
            if task is not None:
                category_id, count = task.class_ids[label], len(task.keypoint_names[label])
            else:
                category_id, count = label, len(points)
            flat: List[float] = []
            for px, py in points[:count]:
                flat += [px, py, float(score)]
            results.append({
                "image_id": int(image_id),
                "category_id": int(category_id),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(score),
                "keypoints": flat,
            })
    return results


@torch.no_grad()
def iterate_predictions(predictor: torch.nn.Module, batches: Iterable[Batch], device: torch.device,
                        amp: bool = False
                        ) -> Iterator[Tuple[torch.Tensor, List[Dict[str, Any]], List[Dict[str, torch.Tensor]]]]:
    """``(images, targets, detections)`` per batch: images padded to the predictor's rule and,
    with the targets, on ``device``; detections on ``device``, floating values in fp32. The
    predictor is put in eval mode for the loop and left as it was found.

    With ``amp`` the predictor runs under bf16 autocast, as the training step does with
    ``train.amp``: the convolutions in bf16, the decoders' coordinate arithmetic in fp32 (they
    cast the raw outputs first: a bf16 coordinate near 100 px moves in steps of 0.5 px)."""
    was_training = predictor.training
    predictor.eval()
    try:
        for images, targets in batches:
            images, targets = to_device(pad_to_rule(images, predictor), targets, device)
            with torch.autocast(device_type=images.device.type, dtype=torch.bfloat16, enabled=amp):
                detections = predictor(images)
            if amp:
                detections = [{k: v.float() if v.is_floating_point() else v for k, v in d.items()}
                              for d in detections]
            yield images, targets, detections
    finally:
        predictor.train(was_training)


def predict_results(predictor: torch.nn.Module, batches: Iterable[Batch], device: torch.device,
                    task: Optional["Task"] = None, amp: bool = False) -> List[Dict[str, Any]]:
    """COCO results of ``predictor`` on every batch (targets need an ``image_id`` each), with
    ``task``'s category ids and keypoints (see :func:`detections_to_results`)."""
    results: List[Dict[str, Any]] = []
    for _, targets, detections in iterate_predictions(predictor, batches, device, amp):
        results += detections_to_results(detections, [t["image_id"] for t in targets], task)
    return results
