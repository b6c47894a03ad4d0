"""Device choice and torch's own scale-out: ``torchrun`` sets the environment, we read it.

No global state: :class:`DistContext` is created once by the trainer and passed around.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ocrloc.config import ConfigError

__all__ = ["DistContext", "cpu_cores", "cpu_threads", "data_workers", "resolve_device", "init_distributed"]


def cpu_cores() -> int:
    """The cores this process may run on (``os.sched_getaffinity``: a container's or ``taskset``'s
    share, not the machine's), split among the processes of this machine under ``torchrun``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return max(1, cores // max(1, local_world))


def data_workers(requested: int, device: torch.device) -> int:
    """DataLoader worker processes: ``requested`` when >= 0; ``-1`` (auto): on the CPU, the cores
    left after torch's compute threads (so threads + workers never exceed the cores: on 2 cores
    with 2 threads, none: a worker there measured 4-13% slower (``benchmarks/train_step.py``, the
    trainer's own runs), the canvases cost ~3% of a step in the main process), on CUDA one per
    core up to 4."""
    if requested >= 0:
        return requested
    if device.type == "cuda":
        return min(4, cpu_cores())
    return max(0, cpu_cores() - torch.get_num_threads())


def cpu_threads(threads: int = 0) -> int:
    """The compute threads for this process: ``threads`` when given, else ``OMP_NUM_THREADS`` when
    set (the variable torch and every OpenMP program honour), else one per core this process may
    run on (``os.sched_getaffinity``: a container's or ``taskset``'s share, not the machine's),
    split among the processes of this machine under ``torchrun``."""
    if threads > 0:
        return threads
    from_env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if from_env.isdigit() and int(from_env) > 0:
        return int(from_env)
    return cpu_cores()


def resolve_device(name: str = "auto", local_rank: int = 0, threads: int = 0) -> torch.device:
    """``auto``: CUDA when present (this process's local rank), else the CPU, with
    :func:`cpu_threads` compute threads."""
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use device: auto or cpu")
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(threads))
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
