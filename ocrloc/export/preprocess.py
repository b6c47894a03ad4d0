"""What every exported file does before the model: any image in, the predictor's canvas out.

:class:`CanvasPreprocess` takes ``[B, C, H, W]`` images, ``C`` = 1 (grey) or 3 (RGB), ``uint8``
(scaled by 1/255) or float (finite values in [0, 1]; others are refused), any ``H`` x ``W``, and
returns the grey float ``[B, 1, H', W']`` canvas the predictor takes: padded with zeros on the
bottom and right to its input rule (``size_divisible``, ``min_size``), so detections stay in the
input's pixels. It is scriptable (TorchScript) and traceable by ``torch.export`` with a dynamic
batch, channel count, height and width.
"""

# No `from __future__ import annotations` here: TorchScript reads the class attribute annotations.
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from ocrloc.constants import FLOAT_TOLERANCE  # the same tolerance as ocrloc.Predictor

__all__ = ["FLOAT_TOLERANCE", "LUMA_WEIGHTS", "CanvasPreprocess"]

# ITU-R 601 luma, as PIL's "L" mode and ocrloc.Predictor convert colour to grey.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class CanvasPreprocess(nn.Module):
    """``[B, 1 or 3, H, W]`` uint8 or float -> ``[B, 1, H', W']`` float in [0, 1], padded to the rule.

    Args:
        size_divisible: the padded H' and W' are multiples of this.
        min_size: and at least this.
        max_size: images whose padded side exceeds this are refused (0: no limit).
        min_cells: the padded sides are at least this many multiples of ``size_divisible`` (the flat
            graphs take 2: torch.export would fix a coarsest feature level of one cell as a special size).

    In a ``torch.export`` graph the channel count is a dimension of range 1 to 3, not checked here
    (the check would fix it to the example's): 2 channels there are averaged with the first two weights.
    """

    size_divisible: int
    min_size: int
    max_size: int
    min_cells: int
    float_tolerance: float

    def __init__(self, size_divisible: int, min_size: int, max_size: int = 0, min_cells: int = 1) -> None:
        super().__init__()
        self.size_divisible = int(size_divisible)
        self.min_size = int(min_size)
        self.max_size = int(max_size)
        # The smallest padded side in multiples: min_size rounded up, or more when asked (min_cells).
        self.min_cells = max(-(-self.min_size // self.size_divisible), int(min_cells))
        self.float_tolerance = FLOAT_TOLERANCE
        self.register_buffer("luma", torch.tensor(LUMA_WEIGHTS), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        checked = True
        if not torch.jit.is_scripting():
            # An exported graph has its channel range in its input spec (1 to 3); testing for 1 or 3
            # here would fix C to the example's.
            checked = not _exporting()
        if images.dim() != 4 or (checked and images.shape[1] not in (1, 3)):
            raise ValueError(f"expected images [B, C, H, W] with C = 1 (grey) or 3 (RGB); "
                             f"got shape {list(images.shape)}")
        if images.dtype == torch.uint8:
            canvases = images.float() / 255.0
        elif images.is_floating_point():
            canvases = images.float()
            self._check_range(canvases)
        else:
            # (No dtype name in the message: TorchScript formats a dtype as its number.)
            raise ValueError("expected uint8 images (0..255) or float images in [0, 1]; "
                             "got another integer or bool dtype")
        height, width = images.shape[2], images.shape[3]
        if height < 1 or width < 1:
            raise ValueError(f"expected images of at least 1 x 1 px; got {height} x {width}")
        # A weighted sum over the channels rather than torchvision's rgb_to_grayscale, which branches on
        # the channel count and so would fix C in an exported graph. One channel: weight 0.299 / 0.299
        # = 1 exactly, so a grey float input reaches the model unchanged (docs/task.md, "The exported model").
        weights = self.luma[: images.shape[1]]
        canvases = (canvases * (weights / weights.sum()).view(1, -1, 1, 1)).sum(dim=1, keepdim=True)
        padded_h, padded_w = self._padded(height), self._padded(width)
        if self.max_size > 0 and (padded_h > self.max_size or padded_w > self.max_size):
            raise ValueError(f"images of {height} x {width} px (padded: {padded_h} x {padded_w}) are larger "
                             f"than this model takes (at most {self.max_size} x {self.max_size})")
        # Bottom and right only: a pixel keeps its coordinates, so detections are in the input's pixels.
        return F.pad(canvases, [0, padded_w - width, 0, padded_h - height])

    def _check_range(self, canvases: torch.Tensor) -> None:
        """Refuse float values outside [0, 1] (0..255 floats, negatives) and NaN or infinity.

        The model answers them with confident nonsense (a 0..255 canvas of an image that has no
        character in [0, 1] gave 70 detections), so the file says what it takes instead. A NaN fails
        both comparisons, an empty batch passes. TorchScript and eager raise a ValueError naming the
        values; a ``torch.export`` graph cannot format numbers at run time, so it asserts with the
        fixed message (a RuntimeError); ONNX drops the assertion (the ONNX file takes the values
        as they are: check them before ``session.run``, README "Export")."""
        message = ("float images must hold finite values in [0, 1] (divide 0..255 floats by 255, or pass uint8 "
                   "images)")
        tolerance = self.float_tolerance
        inside = ((canvases >= -tolerance) & (canvases <= 1.0 + tolerance)).all()
        if torch.jit.is_scripting():
            if not bool(inside):
                raise ValueError(message + "; got " + _float_values(canvases))
        elif _exporting():
            torch._assert_async(inside, message)
        elif not bool(inside):
            raise ValueError(message + "; got " + _float_values(canvases))

    def _padded(self, size: int) -> int:
        """``size`` rounded up to a multiple of ``size_divisible``, at least ``min_cells`` multiples.

        Written as (cells) * divisible so torch.export's symbolic sizes stay multiples of 32 that
        every strided layer divides exactly (no size guards to fix H and W)."""
        cells = (size + self.size_divisible - 1) // self.size_divisible
        if self.min_cells > 1:
            if torch.jit.is_scripting():
                cells = max(cells, self.min_cells)
            else:
                cells = _symbolic_max(cells, self.min_cells)
        return cells * self.size_divisible

    def rule(self) -> List[int]:
        """``[size_divisible, min_size, max_size]``."""
        return [self.size_divisible, self.min_size, self.max_size]


def _float_values(canvases: torch.Tensor) -> str:
    """What the refused values are, in words (never called on an empty tensor: it passes)."""
    if not bool(torch.isfinite(canvases).all()):
        return "NaN or infinite values"
    return f"values from {float(canvases.min())} to {float(canvases.max())}"


@torch.jit.unused
def _symbolic_max(a: int, b: int) -> int:
    # torch.export traces H and W as symbols: Python's max would fix them to the example's size.
    return torch.sym_max(a, b)


@torch.jit.unused
def _exporting() -> bool:
    return torch.compiler.is_exporting()
