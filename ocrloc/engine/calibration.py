"""The argmax detector's score, calibrated on val (Platt scaling): a threshold then means a fraction correct.

A detection's raw score is its dense score times its class probability. The dense heatmap's peaks
sit near 0.6 for true characters (CenterNet's Gaussian targets), so on val of all10 23% of the
true digits scored under 0.5 and a user who thresholded there lost them. At every validation the
trainer matches the detections to the annotations as ``ocrloc evaluate``'s recall and precision do
(a detection is *correct* when it has the class and every labelled keypoint within 3 px of an
annotated object not yet taken, in score order) and fits the three weights of
:meth:`~ocrloc.models.argmax_detector.ArgmaxDetector.fit_score_calibration` to those outcomes;
the weights are buffers, so checkpoints and every export carry them. Measured on val of all10
(1,000 canvases, comparison checkpoint, fitted on one half, scored on the other): true digits'
median score 0.999 and false detections' 0.05; at 0.5, recall 0.975 and precision 0.983,
against 0.777 and 0.998 for the raw product.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from ocrloc.evaluation.matching import match_within_px

__all__ = ["correct_detections", "recalibrate_scores"]

def correct_detections(detections: Dict[str, Tensor], target: Dict[str, Any]) -> Tensor:
    """``[N]`` bool for one image's detections: each found an annotated object, as ``ocrloc evaluate``'s
    recall and precision count it (:func:`~ocrloc.evaluation.matching.match_within_px`: the same
    class, every labelled keypoint within :data:`~ocrloc.evaluation.matching.POINT_MATCH_PX` pixels,
    greedy in score order, one detection per object)."""
    n = detections["labels"].shape[0]
    truth = target["keypoints"].detach().float().cpu().numpy()
    points = detections["keypoints"][..., :2].detach().float().cpu().numpy()
    found = match_within_px(np.zeros(truth.shape[0], np.int64), target["labels"].cpu().numpy(), truth[..., :2],
                            truth[..., 2] > 0, np.zeros(n, np.int64), detections["labels"].cpu().numpy(), points,
                            np.ones(points.shape[:2], bool), detections["scores"].detach().float().cpu().numpy())
    correct = torch.zeros(n, dtype=torch.bool)
    correct[torch.from_numpy(found[found >= 0])] = True
    return correct


def recalibrate_scores(model: torch.nn.Module, batches: Sequence[Tuple[List[Dict[str, Any]], List[Dict[str, Tensor]]]]
                       ) -> None:
    """Fit ``model``'s score calibration on val ``batches`` of ``(targets, detections)`` (the
    detections as :meth:`ArgmaxDetector.detect` gives them, with ``dense_scores`` and
    ``class_scores``) and rescore those detections in place with it (scores, the keypoints' score
    column, and the order by score)."""
    dense, probability, correct = [], [], []
    for targets, detections in batches:
        for target, det in zip(targets, detections):
            dense.append(det["dense_scores"].float().cpu())
            probability.append(det["class_scores"].float().cpu())
            correct.append(correct_detections(det, target))
    if not dense:
        return
    model.fit_score_calibration(torch.cat(dense), torch.cat(probability), torch.cat(correct))
    for _, detections in batches:
        for det in detections:
            scores = model.calibrated_score(det["dense_scores"], det["class_scores"].to(det["dense_scores"].device))
            order = torch.argsort(scores, descending=True)
            for key in list(det):
                det[key] = det[key][order]
            det["scores"] = scores[order]
            det["keypoints"][..., 2] = det["scores"][:, None]
