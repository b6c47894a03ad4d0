"""Augmentation in two places, so that a point's label always matches the pixels.

* **Digit level** (rotation, shear, stroke thickness, elastic): these change which pixel a
  rule picks, so they run on the 28 x 28 digit *before* it is resized and pasted; the
  generator then computes the points on the final ink.
* **Canvas level** (noise, blur, brightness, contrast): run on the finished canvas through
  an albumentations ``Compose`` with ``BboxParams`` / ``KeypointParams``, and restricted to
  pixel-level transforms (``ImageOnlyTransform``), which cannot move a pixel and so cannot
  change which pixel a rule picks. The labels are those of the clean canvas: the model learns
  to place the clean point on a degraded image.

Both are off unless enabled, and the generator refuses them for ``val`` and ``test``.
Randomness comes from the generator's per-canvas seed (``Compose.set_random_seed``), so an
augmented canvas is as reproducible as a clean one.
"""

from __future__ import annotations

import warnings
from typing import Dict, List, Sequence, Tuple

import numpy as np

import ocrloc  # noqa: F401  (sets NO_ALBUMENTATIONS_UPDATE before albumentations is imported)
import albumentations as A

from ocrloc.data.augment_config import CanvasAugmentConfig, DigitAugmentConfig

__all__ = ["DigitAugmentConfig", "CanvasAugmentConfig", "DigitAugment", "CanvasAugment"]


class DigitAugment:
    """Seeded albumentations pipeline for one digit image ``[28, 28]`` uint8."""

    def __init__(self, config: DigitAugmentConfig) -> None:
        self.config = config
        self.compose = A.Compose(
            [
                A.Affine(rotate=(-config.rotate_deg, config.rotate_deg),
                         shear=(-config.shear_deg, config.shear_deg), p=config.affine_p),
                A.OneOf(
                    [
                        A.Morphological(scale=(2, 2), operation="dilation", p=1.0),
                        A.Morphological(scale=(2, 2), operation="erosion", p=1.0),
                    ],
                    p=config.thickness_p,
                ),
                A.ElasticTransform(alpha=config.elastic_alpha, sigma=config.elastic_sigma, p=config.elastic_p),
            ]
        )

    def __call__(self, digit: np.ndarray, seed: int) -> np.ndarray:
        self.compose.set_random_seed(seed)
        return self.compose(image=digit)["image"]


def _check_pixel_level(transforms: Sequence[A.BasicTransform]) -> None:
    for t in transforms:
        if not isinstance(t, A.ImageOnlyTransform):
            raise ValueError(
                f"canvas-level transform {type(t).__name__} moves pixels, so it could change which pixel a "
                "rule picks; canvas-level transforms must be pixel-level (albumentations ImageOnlyTransform). "
                "Put geometric augmentation in the digit-level pipeline, which runs before points are computed."
            )


class CanvasAugment:
    """Seeded albumentations pipeline for a finished canvas, carrying boxes and points along.

    Args:
        config: which degradations to use.
        extra: further transforms to append; each must be pixel-level.
    """

    def __init__(self, config: CanvasAugmentConfig, extra: Sequence[A.BasicTransform] = ()) -> None:
        transforms: List[A.BasicTransform] = [
            A.GaussNoise(std_range=config.noise_std, p=config.noise_p),
            A.GaussianBlur(sigma_limit=config.blur_sigma, p=config.blur_p),
            A.RandomBrightnessContrast(brightness_limit=config.brightness, contrast_limit=config.contrast,
                                       p=config.brightness_contrast_p),
            *extra,
        ]
        _check_pixel_level(transforms)
        self.config = config
        with warnings.catch_warnings():
            # Pixel-level transforms leave boxes and points alone, which albumentations warns about.
            warnings.filterwarnings("ignore", message="Got processor for")
            self.compose = A.Compose(
                transforms,
                bbox_params=A.BboxParams(format="coco", label_fields=["box_ids"]),
                keypoint_params=A.KeypointParams(format="xy", label_fields=["point_ids"], remove_invisible=False),
            )

    def __call__(
        self,
        image: np.ndarray,
        boxes: Sequence[Sequence[float]],
        points: Sequence[Tuple[float, float]],
        seed: int,
    ) -> np.ndarray:
        """Augment ``image`` ``[H, W]`` uint8 carrying its COCO boxes ``[N, 4]`` and points ``[M, 2]``.

        The boxes and points travel through albumentations' ``BboxParams`` / ``KeypointParams``
        as a check: albumentations stores them as float32, so the exact float64 labels are kept
        and the call fails if any came back moved by more than float32 rounding.

        Returns:
            the augmented image, uint8 ``[H, W]``.

        Raises:
            RuntimeError: if a transform dropped or moved a box or a point.
        """
        self.compose.set_random_seed(seed)
        boxes_in = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        points_in = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        out: Dict = self.compose(
            image=image,
            bboxes=boxes_in,
            box_ids=list(range(len(boxes_in))),
            keypoints=points_in,
            point_ids=list(range(len(points_in))),
        )
        if len(out["bboxes"]) != len(boxes_in) or len(out["keypoints"]) != len(points_in):
            raise RuntimeError("canvas augmentation dropped a box or a point; it must leave every label in place")
        boxes_out = np.asarray(out["bboxes"], dtype=np.float64)[np.argsort(out["box_ids"])]
        points_out = np.asarray(out["keypoints"], dtype=np.float64)[np.argsort(out["point_ids"]), :2]
        if not (np.allclose(boxes_out, boxes_in, atol=1e-3) and np.allclose(points_out, points_in, atol=1e-3)):
            raise RuntimeError("canvas augmentation moved a box or a point; it must be pixel-level only")
        return out["image"]
