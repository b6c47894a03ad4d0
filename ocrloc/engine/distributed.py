"""Device choice and torch's own scale-out: ``torchrun`` sets the environment, we read it.

No global state: :class:`DistContext` is created once by the trainer and passed around.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistContext", "resolve_device", "init_distributed"]


def resolve_device(name: str = "auto", local_rank: int = 0, threads: int = 0) -> torch.device:
    """``auto``: CUDA when present (this process's local rank), else the CPU with one thread per core
    (split among the processes of this machine), or ``threads`` when given."""
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use device: auto or cpu")
    if device.type == "cpu":
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
        torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // local_world))
    return device


@dataclass(frozen=True)
class DistContext:
    """Rank and world size of this process (1 process without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes logs and checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_distributed(device_name: str = "auto", threads: int = 0) -> tuple[DistContext, torch.device]:
    """Join the process group that ``torchrun`` describes (gloo on CPU, nccl on CUDA), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ctx = DistContext(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_name, ctx.local_rank, threads)
    if ctx.enabled and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ctx, device
