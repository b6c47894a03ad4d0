"""Argmax features: layers that hand a head *where* things are, not only *what* they are.

Pooling and flattening keep the strength of a feature and lose its position. These layers
turn a map into coordinates a head can use directly (all TorchScript-scriptable):

* :class:`SoftArgmax2d`: per channel, the expected (x, y) under a spatial softmax with a
  learnable temperature (integral regression / DSNT); :func:`dsnt_variance_loss` is DSNT's
  variance regulariser.
* :class:`HardArgmax2d`: the arg-max cell, with the soft-argmax gradient passed straight through.
* :class:`SoftThreshold` + :class:`ExtremePoints`: a differentiable cut-off
  ``sigmoid((a - t) / tau)`` with learnable ``t`` and ``tau``, then the soft first and last
  occupied row and column of the mask: the ink box and the topmost / bottommost / leftmost /
  rightmost points of ``docs/task.md``, "Named points", on a canvas crop or a feature map.
* :class:`AddCoords`: CoordConv's coordinate channels.

Coordinates are in map pixels with the task's conventions (``docs/task.md``, "Coordinates"):
cell ``(row r, col c)`` covers ``[c, c + 1) x [r, r + 1)`` and its center is ``(c + 0.5, r + 0.5)``; box edges are
``c_min``, ``c_max + 1``, ``r_min``, ``r_max + 1``.
"""

# No `from __future__ import annotations`: TorchScript reads these annotations.
import math
from typing import Tuple

import torch
from torch import Tensor, nn

__all__ = [
    "EXTREME_FEATURES",
    "AddCoords",
    "ExtremePoints",
    "HardArgmax2d",
    "SoftArgmax2d",
    "SoftThreshold",
    "dsnt_variance_loss",
    "spatial_expectation",
]

# The columns of ExtremePoints' output, per channel.
EXTREME_FEATURES = ("left", "top", "right", "bottom", "topmost_x", "bottommost_x", "leftmost_y", "rightmost_y")


def _centers(n: int, like: Tensor) -> Tensor:
    return torch.arange(n, device=like.device, dtype=like.dtype) + 0.5


def spatial_expectation(prob: Tensor) -> Tensor:
    """``[B, C, H, W]`` probabilities (summing to 1 per channel) -> expected ``[B, C, 2]`` (x, y)."""
    h, w = prob.shape[-2], prob.shape[-1]
    x = (prob.sum(dim=-2) * _centers(w, prob)).sum(dim=-1)
    y = (prob.sum(dim=-1) * _centers(h, prob)).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


class SoftArgmax2d(nn.Module):
    """Per channel, the expected (x, y) under ``softmax(beta * map)`` over the H x W cells.

    Args:
        beta: initial inverse temperature (learnable through its log when ``learnable``).
        learnable: learn ``beta``.

    ``forward`` returns ``(coords [B, C, 2], prob [B, C, H, W])``; ``prob`` feeds
    :func:`dsnt_variance_loss`.
    """

    def __init__(self, beta: float = 1.0, learnable: bool = True) -> None:
        super().__init__()
        self.log_beta = nn.Parameter(torch.tensor(math.log(beta)), requires_grad=learnable)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        logits = (x * self.log_beta.exp()).reshape(b, c, h * w)
        prob = logits.softmax(dim=-1).reshape(b, c, h, w)
        return spatial_expectation(prob), prob


class HardArgmax2d(nn.Module):
    """The arg-max cell center of each channel; gradients are those of :class:`SoftArgmax2d`
    (straight-through), since an arg-max alone has none."""

    def __init__(self, beta: float = 1.0, learnable: bool = True) -> None:
        super().__init__()
        self.soft = SoftArgmax2d(beta, learnable)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        soft, _ = self.soft(x)
        index = x.reshape(b, c, h * w).argmax(dim=-1)
        hard = torch.stack([(index % w).to(x.dtype), torch.div(index, w, rounding_mode="floor").to(x.dtype)], dim=-1) + 0.5
        return soft + (hard - soft).detach()


def dsnt_variance_loss(prob: Tensor, sigma: float = 1.0) -> Tensor:
    """DSNT's variance regulariser: mean over channels of ``(var_x - sigma^2)^2 + (var_y - sigma^2)^2``,
    pushing each softmax map towards a compact blob of standard deviation ``sigma`` (map pixels)."""
    h, w = prob.shape[-2], prob.shape[-1]
    px, py = prob.sum(dim=-2), prob.sum(dim=-1)
    cx, cy = _centers(w, prob), _centers(h, prob)
    mean_x, mean_y = (px * cx).sum(-1, keepdim=True), (py * cy).sum(-1, keepdim=True)
    var_x = (px * (cx - mean_x) ** 2).sum(-1)
    var_y = (py * (cy - mean_y) ** 2).sum(-1)
    target = sigma ** 2
    return ((var_x - target) ** 2 + (var_y - target) ** 2).mean()


class SoftThreshold(nn.Module):
    """``sigmoid((a - t) / tau)`` per channel, with learnable threshold ``t`` and temperature ``tau``
    (``tau`` through its log, so it stays positive): a cut-off a gradient can pass through.

    Args:
        channels: channels of the input (one ``t`` and ``tau`` each).
        threshold: initial ``t`` (0.5: the ink threshold on a [0, 1] canvas, ``docs/task.md``,
            "Ink and ink box").
        tau: initial temperature; small values approach the hard cut-off.
    """

    def __init__(self, channels: int = 1, threshold: float = 0.5, tau: float = 0.05) -> None:
        super().__init__()
        self.threshold = nn.Parameter(torch.full((channels,), float(threshold)))
        self.log_tau = nn.Parameter(torch.full((channels,), math.log(tau)))

    def forward(self, x: Tensor) -> Tensor:
        t = self.threshold.view(1, -1, 1, 1)
        tau = self.log_tau.exp().view(1, -1, 1, 1)
        return torch.sigmoid((x - t) / tau)


def _first_occupied(presence: Tensor) -> Tensor:
    """Soft one-hot of the first occupied index: ``p_i * prod_{k<i} (1 - p_k)``, normalised."""
    empty_before = torch.cumprod(torch.cat([torch.ones_like(presence[..., :1]), 1.0 - presence[..., :-1]], dim=-1), dim=-1)
    weights = presence * empty_before
    return weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-6)


def _line_median(line: Tensor, centers: Tensor) -> Tensor:
    """Median of the cell centers along ``line`` (mask values ``[..., L]``), as numpy's median of
    the occupied cells: the middle one, or the mean of the two middle ones. Cell j is the k-th
    occupied one where the running count reaches k; a triangle kernel on that count makes the
    pick exact for a binary mask and differentiable for a soft one."""
    count = line.cumsum(dim=-1)
    n = torch.round(line.sum(dim=-1, keepdim=True))
    lower = torch.floor((n + 1) / 2)
    upper = torch.floor(n / 2) + 1
    weights = line * 0.5 * (torch.relu(1 - (count - lower).abs()) + torch.relu(1 - (count - upper).abs()))
    return (weights * centers).sum(dim=-1) / weights.sum(dim=-1).clamp_min(1e-6)


class ExtremePoints(nn.Module):
    """Soft extremes of a mask in ``[0, 1]``: ``[B, C, H, W]`` -> ``[B, C, 8]`` (:data:`EXTREME_FEATURES`).

    A row (column) is occupied with probability ``max`` of its mask values; the first occupied
    row is a soft one-hot ``p_i * prod_{k<i} (1 - p_k)``, and its index gives ``top`` (``r_min``).
    The same from the other end gives ``bottom`` (``r_max + 1``), and along columns ``left`` and
    ``right``. ``topmost_x`` is the mask-weighted mean column center in the first row (the named
    point uses the median, ``docs/task.md``, "Named points"; they agree for the runs of one or two
    pixels a digit's extreme row holds), and
    likewise ``bottommost_x``, ``leftmost_y``, ``rightmost_y``. For a binary mask every value is
    exact; a soft mask gives a differentiable approximation.
    """

    def forward(self, mask: Tensor) -> Tensor:
        h, w = mask.shape[-2], mask.shape[-1]
        rows = mask.amax(dim=-1)  # [B, C, H]
        cols = mask.amax(dim=-2)  # [B, C, W]
        first_row = _first_occupied(rows)
        last_row = _first_occupied(rows.flip(-1)).flip(-1)
        first_col = _first_occupied(cols)
        last_col = _first_occupied(cols.flip(-1)).flip(-1)
        r_index = torch.arange(h, device=mask.device, dtype=mask.dtype)
        c_index = torch.arange(w, device=mask.device, dtype=mask.dtype)
        top = (first_row * r_index).sum(-1)
        bottom = (last_row * r_index).sum(-1) + 1.0
        left = (first_col * c_index).sum(-1)
        right = (last_col * c_index).sum(-1) + 1.0
        # The mask of the extreme row / column, then its mean cell center.
        top_line = (first_row.unsqueeze(-1) * mask).sum(-2)  # [B, C, W]
        bottom_line = (last_row.unsqueeze(-1) * mask).sum(-2)
        left_line = (first_col.unsqueeze(-2) * mask).sum(-1)  # [B, C, H]
        right_line = (last_col.unsqueeze(-2) * mask).sum(-1)
        cx, cy = c_index + 0.5, r_index + 0.5
        topmost_x = _line_median(top_line, cx)
        bottommost_x = _line_median(bottom_line, cx)
        leftmost_y = _line_median(left_line, cy)
        rightmost_y = _line_median(right_line, cy)
        return torch.stack([left, top, right, bottom, topmost_x, bottommost_x, leftmost_y, rightmost_y], dim=-1)


class AddCoords(nn.Module):
    """CoordConv: append x and y coordinate channels in [-1, 1] (cell centers) to ``[B, C, H, W]``."""

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        ys = (_centers(h, x) / h * 2.0 - 1.0).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = (_centers(w, x) / w * 2.0 - 1.0).view(1, 1, 1, w).expand(b, 1, h, w)
        return torch.cat([x, xs, ys], dim=1)
