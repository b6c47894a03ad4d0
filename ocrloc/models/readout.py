"""A per-class linear read-out fitted in closed form: ridge least squares on streamed statistics.

A head that is handed exact coordinates (the ink's extremes, its centroid, the box) only has to
learn *which* of them, or which mix, each class's point is. Gradient descent on a linear map
learns that slowly: starting from zero, a weight of 1 on the right coordinate takes hundreds of
small steps, and every class competes for the same few. Least squares answers it in one solve.
:class:`RidgeReadout` keeps, per class, the (exponentially decayed) sums ``X^T X`` and
``X^T Y`` of the features it is shown while training, and solves the ridge problem on them
after every update: a 10 x (D + 1) x (D + 1) solve for D of about 30, microseconds next to a
training step. The map is a buffer, not a parameter: it is part of the state dict (so
checkpoints, resume and export carry it) but no optimiser touches it. Gradients still flow
*through* it into whatever computed the features.

Nothing here knows what the outputs mean: the features and targets are whatever the caller
streams in (for the argmax-feature head, normalised crop coordinates and the annotated point).
"""

# No `from __future__ import annotations`: TorchScript reads these annotations.
from typing import Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["RidgeReadout"]


class RidgeReadout(nn.Module):
    """``out[n] = [x[n], 1] @ weight[labels[n]]``, with ``weight`` fitted by ridge least squares.

    Args:
        in_features: D, features per sample.
        out_features: outputs per sample (2 for a point).
        num_classes: one map per class.
        decay: the statistics are multiplied by this before each update, so the fit follows
            features that change while the rest of the model trains (0.99: about the last 100
            updates count).
        ridge: the penalty, relative to each feature's own variance in the class (scale-free:
            1e-3 shrinks a weight by about 0.1%), keeping the solve well-posed when features
            are collinear (a box edge and the ink edge it was drawn from).

    Call :meth:`update` with detached features, the classes and the targets while training;
    the forward pass only reads the current map. A class never updated maps to zeros.
    Under ``torch.distributed`` the batch statistics are summed over the ranks before they are
    added, so every rank holds the same map.
    """

    def __init__(self, in_features: int, out_features: int, num_classes: int, decay: float = 0.99,
                 ridge: float = 1e-3) -> None:
        super().__init__()
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        if ridge < 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        self.in_features = in_features
        self.out_features = out_features
        self.num_classes = num_classes
        self.decay = decay
        self.ridge = ridge
        d = in_features + 1
        # float64: sums over thousands of samples of products of coordinates.
        self.register_buffer("gram", torch.zeros(num_classes, d, d, dtype=torch.float64))
        self.register_buffer("cross", torch.zeros(num_classes, d, out_features, dtype=torch.float64))
        self.register_buffer("weight", torch.zeros(num_classes, d, out_features))

    def forward(self, x: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """``x [N, D]``, ``labels [N]`` -> ``[N, out_features]``; without labels, every class's
        output ``[N, num_classes, out_features]``."""
        weight = self.weight.to(x.dtype)
        if labels is None:
            return torch.einsum("nd,cdo->nco", x, weight[:, :-1]) + weight[:, -1]
        w = weight[labels]  # [N, D + 1, O]
        return torch.einsum("nd,ndo->no", x, w[:, :-1]) + w[:, -1]

    @torch.jit.unused  # training only; the exported model reads the map
    @torch.no_grad()
    def update(self, x: Tensor, labels: Tensor, y: Tensor, weights: Optional[Tensor] = None) -> None:
        """Add samples ``x [N, D]`` of classes ``labels [N]`` with targets ``y [N, O]`` (each
        counted ``weights [N]`` times, 1 by default; 0 leaves a sample out), then re-solve."""
        n = x.shape[0]
        x1 = torch.cat([x.detach().double(), torch.ones(n, 1, dtype=torch.float64, device=x.device)], dim=1)
        w = torch.ones(n, dtype=torch.float64, device=x.device) if weights is None else weights.detach().double()
        onehot = torch.nn.functional.one_hot(labels.long(), self.num_classes).double() * w[:, None]  # [N, C]
        gram = torch.einsum("nc,ni,nj->cij", onehot, x1, x1)
        cross = torch.einsum("nc,ni,no->cio", onehot, x1, y.detach().double())
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(gram)
            dist.all_reduce(cross)
        self.gram.mul_(self.decay).add_(gram)
        self.cross.mul_(self.decay).add_(cross)
        self.solve()

    @torch.jit.unused
    @torch.no_grad()
    def solve(self) -> None:
        """Refit every class's map from the statistics (classes without samples map to zeros)."""
        count = self.gram[:, -1, -1]  # the (decayed) number of samples of each class
        seen = count > 0
        if not bool(seen.any()):
            return
        g, c, n = self.gram[seen], self.cross[seen], count[seen].view(-1, 1, 1)
        # Centre on the class's means, so the intercept is not penalised and the penalty is
        # relative to each feature's spread: ridge regression on standardised features.
        mean_x = g[:, :-1, -1:] / n  # [S, D, 1]
        mean_y = c[:, -1:, :] / n  # [S, 1, O]
        cov = g[:, :-1, :-1] / n - mean_x @ mean_x.transpose(1, 2)
        cov_xy = c[:, :-1, :] / n - mean_x @ mean_y
        diagonal = torch.diagonal(cov, dim1=1, dim2=2).clamp_min(0)
        eye = torch.eye(self.in_features, dtype=cov.dtype, device=cov.device)
        # The 1e-12 floor keeps a feature that never varies (an unused input) from making the
        # system singular; its weight then stays 0.
        penalty = torch.diag_embed(self.ridge * diagonal) + 1e-12 * eye
        slope = torch.linalg.solve(cov + penalty, cov_xy)  # [S, D, O]
        intercept = mean_y - mean_x.transpose(1, 2) @ slope  # [S, 1, O]
        self.weight[seen] = torch.cat([slope, intercept], dim=1).to(self.weight.dtype)
