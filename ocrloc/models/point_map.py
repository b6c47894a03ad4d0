"""A point head that learns *where* a point is: one score map per keypoint over the canvas window.

The argmax-feature head's closed-form read-out (:mod:`ocrloc.models.readout`) is exact when the
annotated point is one of the coordinates it is handed (the ink's extremes, centroid and box) or a
linear mix of them. A point found by a *search* over the ink, such as the ink pixel nearest some
reference or the first ink met along some line, is neither: it is a pixel of the stroke that only a
comparison of every ink pixel finds. :class:`PointMapHead` learns such points the way a keypoint
heatmap does, at the canvas's own resolution and per class:

* **Input, per detection**: the ``S x S`` canvas window that the argmax-feature head already reads
  pixel for pixel, its ink mask (the head's near-hard ink cut-off, inside the box and the ink
  connected to it), the window's region mask, the finest FPN level around the detection
  (upsampled to the window: what the canvas pixels alone cannot say, such as a font), and
  CoordConv coordinate channels measured from the *ink's* box, which the head has just measured
  exactly: ``x - left`` and ``y - top``, the same as fractions of the ink box's width and height,
  the ink box's width and height, and the degree-2 products of those. Measured from the ink, not
  from the detected box, they do not move when a detected box is a pixel off; a polynomial basis
  of degree 2, they let a linear layer rank pixels by a distance or by a position along a line.
  They are in *pixel* units (fractions times ``S``, products divided by ``S``), not in units of
  the window: a score that separates two neighbouring pixels then needs weights of order one,
  which a few hundred optimiser steps reach (in units of the window it needs weights of order
  ``S``, and the maps stayed soft: on val, 88% of stroke points exact against 92%). None of them
  is a point.
* **A shared trunk** of two 3 x 3 convolutions (local context: stroke direction, ends, joins),
  then, per (class, keypoint) slot, a pointwise MLP whose first and last layers are the slot's
  own (its last layer also sees the inputs directly): three maps per slot, a score and a
  sub-pixel offset ``(dx, dy)``.
* **Read-out**: the arg-max cell of the score map plus the offset at that cell. Trained as
  classification over the ``S^2`` cells (cross-entropy with the cell holding the annotated point,
  as SimCC and keypoint heatmaps with a softmax do) and an L1 loss on the offset at that cell.

A point on an ink pixel's center is then exact whenever the right pixel wins; a point between
pixels (a font's baseline) is as exact as the offset learned. Nothing here knows a rule: which
pixel a class wants is learned from the annotations, as the closed-form fit learns which
coordinate it wants. :class:`~ocrloc.models.argmax_detector.ArgmaxPointHead` keeps both and
chooses per slot, from the data, the one that has placed the training points better.
"""

# No `from __future__ import annotations`: TorchScript reads these annotations.
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MAP_COORDINATES", "PointMapHead", "coordinate_channels", "map_loss", "map_targets"]

# The coordinate channels, in order (see the module docstring), with X = x - left, Y = y - top
# and W, H the ink box's width and height, in pixels: u = S X / W, v = S Y / H, and the products
# divided by S, so that every channel spans about the window's S pixels.
MAP_COORDINATES = ("X", "Y", "u", "v", "W", "H", "X^2", "Y^2", "XW", "YH", "XH", "YW")


def coordinate_channels(ink_box: Tensor, size: int) -> Tensor:
    """``[N, 12, S, S]`` CoordConv channels of :data:`MAP_COORDINATES` at each pixel center for
    ink boxes ``[N, 4]`` (left, top, right, bottom in window pixels, S = ``size``)."""
    n = ink_box.shape[0]
    s = float(size)
    centers = torch.arange(size, device=ink_box.device, dtype=ink_box.dtype) + 0.5
    left, top = ink_box[:, 0].view(n, 1, 1), ink_box[:, 1].view(n, 1, 1)
    width = (ink_box[:, 2] - ink_box[:, 0]).clamp_min(1.0).view(n, 1, 1)
    height = (ink_box[:, 3] - ink_box[:, 1]).clamp_min(1.0).view(n, 1, 1)
    x = (centers.view(1, 1, size) - left).expand(n, size, size)
    y = (centers.view(1, size, 1) - top).expand(n, size, size)
    w, h = width.expand(n, size, size), height.expand(n, size, size)
    channels = [x, y, s * x / w, s * y / h, w, h, x * x / s, y * y / s, x * w / s, y * h / s, x * h / s, y * w / s]
    return torch.stack(channels, dim=1)


def map_targets(points: Tensor, size: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Annotated points in window pixels ``[..., 2]`` -> (cell index ``[...]`` into the flattened
    ``S x S`` map, the point's offset from that cell's center ``[..., 2]`` in [-0.5, 0.5), and
    whether the point lies inside the window at all ``[...]``)."""
    cell = torch.floor(points)
    inside = (cell >= 0).all(dim=-1) & (cell < size).all(dim=-1)
    cell = cell.clamp(0, size - 1)
    index = (cell[..., 1] * size + cell[..., 0]).long()
    return index, points - cell - 0.5, inside


class PointMapHead(nn.Module):
    """Per detection and keypoint slot: window inputs -> a score map and a sub-pixel offset map.

    Args:
        in_channels: channels of the window inputs (canvas, ink, region, context, ...) that come
            before the coordinate channels.
        num_slots: one (class, keypoint) slot per map: ``num_classes * num_keypoints``.
        size: S, the window's side in pixels.
        hidden: channels of the shared 3 x 3 trunk.
        slot_hidden: hidden units of each slot's pointwise MLP.

    ``forward(inputs [N, C, S, S], ink_box [N, 4], slots [N, K])`` returns ``[N, K, 3, S * S]``:
    per row and keypoint, the score logits over the cells and the offsets ``(dx, dy)`` of each cell.
    """

    def __init__(self, in_channels: int, num_slots: int, size: int, hidden: int = 32, slot_hidden: int = 32) -> None:
        super().__init__()
        self.size = size
        self.num_slots = num_slots
        channels = in_channels + len(MAP_COORDINATES)
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True))
        first = hidden + channels
        # Slot-specific first and last layers, a shared middle one: [slots, out, in] weights
        # gathered per row (a grouped 1 x 1 convolution whose group is the row's slot).
        self.slot_in = nn.Parameter(torch.randn(num_slots, slot_hidden, first) / math.sqrt(first))
        self.slot_in_bias = nn.Parameter(torch.zeros(num_slots, slot_hidden))
        self.middle = nn.Linear(slot_hidden, slot_hidden)
        last = slot_hidden + channels
        # A small start: every cell scores alike at first, and offsets start at the cell center.
        self.slot_out = nn.Parameter(torch.randn(num_slots, 3, last) * (0.01 / math.sqrt(last)))
        self.slot_out_bias = nn.Parameter(torch.zeros(num_slots, 3))

    def forward(self, inputs: Tensor, ink_box: Tensor, slots: Tensor) -> Tensor:
        n, k = slots.shape[0], slots.shape[1]
        cells = self.size * self.size
        x = torch.cat([inputs, coordinate_channels(ink_box, self.size).to(inputs.dtype)], dim=1)
        shared = torch.cat([self.trunk(x), x], dim=1).flatten(2)  # [N, D, S * S]
        flat = slots.reshape(-1)
        hidden = self.slot_in.shape[1]
        w_in, b_in = self.slot_in[flat].view(n, k, hidden, self.slot_in.shape[2]), self.slot_in_bias[flat].view(n, k, hidden, 1)
        h = F.relu(torch.einsum("ndp,nkhd->nkhp", shared, w_in) + b_in)  # [N, K, hidden, S * S]
        h = F.relu(self.middle(h.transpose(2, 3))).transpose(2, 3)
        h = torch.cat([h, x.flatten(2)[:, None].expand(n, k, x.shape[1], cells)], dim=2)
        w_out, b_out = self.slot_out[flat].view(n, k, 3, self.slot_out.shape[2]), self.slot_out_bias[flat].view(n, k, 3, 1)
        return torch.einsum("nkhp,nkoh->nkop", h, w_out) + b_out

    def decode(self, maps: Tensor) -> Tensor:
        """``[N, K, 3, S * S]`` -> the points ``[N, K, 2]`` in window pixels: the arg-max cell's
        center plus its offset."""
        size = self.size
        index = maps[:, :, 0].argmax(dim=-1)  # [N, K]
        offset = maps[:, :, 1:].gather(3, index[:, :, None, None].expand(-1, -1, 2, 1)).squeeze(3)
        column = torch.remainder(index, size)
        row = torch.div(index - column, size, rounding_mode="floor")
        cell = torch.stack([column, row], dim=-1).to(maps.dtype) + 0.5
        return cell + offset


def map_loss(maps: Tensor, points: Tensor, visible: Tensor) -> Tuple[Tensor, Tensor]:
    """The point map's training loss: cross-entropy of each score map (``maps [N, K, 3, S * S]``)
    with the cell holding its visible annotated point (``points [N, K, 2]`` in window pixels,
    ``visible [N, K]``; points outside the window are left out), and the L1 error (pixels) of the
    offset at that cell. Returns ``(ce, offset)``, means over the points counted (zeros when none is)."""
    size = int(round(math.sqrt(maps.shape[-1])))
    index, offset, inside = map_targets(points.float(), size)
    keep = visible & inside
    if not bool(keep.any()):
        zero = maps.sum() * 0.0
        return zero, zero
    ce = F.cross_entropy(maps[:, :, 0][keep].float(), index[keep])
    predicted = maps[:, :, 1:].gather(3, index[:, :, None, None].expand(-1, -1, 2, 1)).squeeze(3)
    l1 = (predicted[keep].float() - offset[keep]).abs().sum(dim=-1).mean()
    return ce, l1
