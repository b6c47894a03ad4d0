"""A resumable, sharded stream of sample indices: batch ``k`` of rank ``r`` is a pure function of k and r.

That makes ``--resume`` exact (start at the checkpoint's step, nothing repeated or skipped)
and DDP correct (ranks read disjoint samples) without epoch bookkeeping.
"""

from __future__ import annotations

from typing import Iterator, Optional

import torch
from torch.utils.data import Sampler

__all__ = ["StepSampler"]


class StepSampler(Sampler[int]):
    """Indices for steps ``start_step .. steps-1``, ``batch_size`` per step and rank.

    Args:
        length: size of a finite dataset, shuffled anew each epoch with ``seed + epoch``;
            None for an unlimited dataset (generated canvases), read sequentially: global
            sample ``g`` is canvas ``g``, so no canvas is ever seen twice.
        batch_size: samples per step per rank.
        steps: total steps.
        start_step: first step to produce (resume).
        seed: shuffling seed.
        rank, world_size: this process's shard.
    """

    def __init__(self, length: Optional[int], batch_size: int, steps: int, start_step: int = 0, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        self.length = length
        self.batch_size = batch_size
        self.steps = steps
        self.start_step = start_step
        self.seed = seed
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step) * self.batch_size

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        assert self.length is not None
        return torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed + epoch))

    def __iter__(self) -> Iterator[int]:
        per_step = self.batch_size * self.world_size
        cached_epoch, order = -1, None
        for step in range(self.start_step, self.steps):
            base = step * per_step + self.rank * self.batch_size
            for g in range(base, base + self.batch_size):
                if self.length is None:
                    yield g
                    continue
                epoch, position = divmod(g, self.length)
                if epoch != cached_epoch:
                    cached_epoch, order = epoch, self._epoch_order(epoch)
                yield int(order[position])
