"""The augmentation settings (:mod:`ocrloc.data.augment` applies them).

Kept apart from the pipelines so that reading a config does not import albumentations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

__all__ = ["DigitAugmentConfig", "CanvasAugmentConfig"]


@dataclass(frozen=True)
class DigitAugmentConfig:
    """Shape changes applied to each 28 x 28 digit before pasting.

    Attributes:
        enabled: master switch.
        rotate_deg: rotation drawn uniformly from [-rotate_deg, rotate_deg].
        shear_deg: shear drawn uniformly from [-shear_deg, shear_deg] on each axis.
        affine_p: probability of the rotation + shear.
        thickness_p: probability of a one-step dilation (thicker) or erosion (thinner) stroke.
        elastic_p: probability of an elastic deformation (``elastic_alpha``, ``elastic_sigma``).
    """

    enabled: bool = False
    rotate_deg: float = 10.0
    shear_deg: float = 8.0
    affine_p: float = 0.7
    thickness_p: float = 0.3
    elastic_p: float = 0.2
    elastic_alpha: float = 20.0
    elastic_sigma: float = 4.0


@dataclass(frozen=True)
class CanvasAugmentConfig:
    """Pixel-level degradations of the finished canvas (labels unchanged).

    Attributes:
        enabled: master switch.
        noise_std: Gaussian noise std range, as a fraction of the 0-255 range.
        noise_p, blur_p, brightness_contrast_p: probabilities of each transform.
        blur_sigma: Gaussian blur sigma range in pixels.
        brightness, contrast: symmetric limits of ``RandomBrightnessContrast``.
    """

    enabled: bool = False
    noise_std: Tuple[float, float] = (0.01, 0.06)
    noise_p: float = 0.3
    blur_sigma: Tuple[float, float] = (0.3, 0.8)
    blur_p: float = 0.2
    brightness: float = 0.15
    contrast: float = 0.15
    brightness_contrast_p: float = 0.3
