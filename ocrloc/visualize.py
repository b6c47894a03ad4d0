"""Pictures people would rather see than read: canvases with boxes, classes and points, as PNG.

Built on ``torchvision.utils`` (``draw_bounding_boxes``, ``draw_keypoints``, ``make_grid``)
and ``torchvision.io.write_png``. Canvases are upscaled (nearest) before drawing, so that a
point a fraction of a pixel off is visible.
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.io import write_png
from torchvision.utils import draw_bounding_boxes, draw_keypoints, make_grid

from ocrloc.utils.io import atomic_path

__all__ = ["CLASS_COLORS", "draw_detections", "save_grid", "save_canvas_preview"]

# One colour per digit class (tab10), so a class reads at a glance.
CLASS_COLORS: List[tuple] = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]
POINT_COLOR = (255, 40, 40)


def draw_detections(
    image: np.ndarray | torch.Tensor,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    points: Optional[torch.Tensor] = None,
    scores: Optional[torch.Tensor] = None,
    scale: int = 3,
    class_names: Optional[Sequence[str]] = None,
) -> torch.Tensor:
    """Draw boxes (coloured by class, captioned with class and score) and points on a grey canvas.

    Args:
        image: uint8 ``[H, W]`` array, or float ``[1, H, W]`` / ``[H, W]`` tensor in [0, 1].
        boxes: ``[N, 4]`` xyxy in canvas pixels.
        labels: ``[N]`` class indices.
        points: ``[N, 2]`` or ``[N, K, 2+]`` keypoints (x, y) in canvas pixels, or None.
        scores: ``[N]`` confidences to print beside the class, or None.
        scale: integer upscaling factor.
        class_names: the caption of each class index (default: the index).

    Returns:
        uint8 tensor ``[3, H * scale, W * scale]``.
    """
    img = torch.as_tensor(image)
    if img.dtype != torch.uint8:
        img = (img.float().clamp(0, 1) * 255).round().to(torch.uint8)
    img = img.reshape(1, 1, *img.shape[-2:]).float()
    img = F.interpolate(img, scale_factor=scale, mode="nearest").to(torch.uint8)[0].expand(3, -1, -1).contiguous()
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    labels = torch.as_tensor(labels).reshape(-1)
    if boxes.numel():
        names = [class_names[int(c)] if class_names is not None else str(int(c)) for c in labels]
        captions = names if scores is None else [f"{n} {float(s):.2f}" for n, s in zip(names, scores)]
        colors = [CLASS_COLORS[int(c) % len(CLASS_COLORS)] for c in labels]
        img = draw_bounding_boxes(img, boxes * scale, labels=captions, colors=colors, width=1)
    if points is not None and len(points):
        xy = torch.as_tensor(points, dtype=torch.float32)
        xy = xy.reshape(len(points), 1, -1) if xy.dim() == 2 else xy
        img = draw_keypoints(img, xy[..., :2] * scale, colors=POINT_COLOR, radius=max(1, scale // 2 + 1))
    return img


def save_grid(panels: Sequence[torch.Tensor], path: str | os.PathLike, nrow: int = 4) -> None:
    """Save uint8 ``[3, h, w]`` panels as one PNG grid, atomically."""
    grid = make_grid([p.float() for p in panels], nrow=nrow, padding=4, pad_value=255).to(torch.uint8)
    with atomic_path(path, suffix=".png") as tmp:
        write_png(grid, str(tmp))


def save_canvas_preview(generator, path: str | os.PathLike, count: int = 16, nrow: int = 4, scale: int = 3) -> None:
    """Save canvases ``0 .. count-1`` of a canvas generator (MNIST digits or printed glyphs) with
    their ink boxes, class names and keypoints, as one PNG grid."""
    from ocrloc.data.datasets import generated_target

    names = generator.task.class_names
    panels = []
    for index in range(count):
        canvas = generator(index)
        target = generated_target(generator, canvas, index + 1)
        panels.append(draw_detections(canvas.image, target["boxes"], target["labels"], target["keypoints"], scale=scale,
                                      class_names=names))
    save_grid(panels, path, nrow=nrow)
