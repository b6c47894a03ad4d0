"""``train.amp: auto``: bf16 autocast where a short probe at the start shows this machine runs it faster.

Whether bf16 pays is a property of the processor, not of the model: on a CPU with AMX or
avx512_bf16 the bare backbones ran 2.0x faster in bf16 (2026-12-06), on an AVX2-only CPU bf16
convolutions ran ~17x slower (``benchmarks/train_step.py``). The probe times a few forward and
backward passes of a small convolution stack, the layers that dominate every family's step, in
fp32 and under bf16 autocast on the training device, and keeps bf16 when it is clearly faster
(:data:`MARGIN`). Its size is measured: with 32 channels on 8 images of 64 x 64 bf16 was not
reliably faster even on an AMX CPU (18–257 ms against 64–131 ms in fp32, beside a test run);
with 64 channels on 16 images it ran 208–245 ms against 436–470 ms, every time (2026-12-07,
2 vCPU with AMX); about 3 s at the start of a run. The trainer writes the choice into the run's config (``train.amp: true`` or
``false``), so a resumed run, its checkpoints and ``ocrloc predict`` use what the run trained in.
"""

from __future__ import annotations

import statistics
import time
from typing import Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MARGIN", "probe_bf16", "resolve_amp"]

MARGIN = 0.8  # bf16 is kept when its probe time is at most this fraction of fp32's


def probe_bf16(device: torch.device, size: int = 64, channels: int = 64, batch: int = 16, repeats: int = 3
               ) -> Tuple[float, float]:
    """Seconds per forward + backward pass of three 3 x 3 convolutions on ``[batch, channels,
    size, size]``, in fp32 and under bf16 autocast: the median of ``repeats`` passes of each, the
    two dtypes taking turns (so a machine that slows down or speeds up meanwhile slows both),
    after a warm-up pass of each."""
    generator = torch.Generator().manual_seed(0)  # the probe leaves the global random state alone
    layers = nn.Sequential(*[nn.Conv2d(channels, channels, 3, padding=1) for _ in range(3)]).to(device)
    images = torch.rand(batch, channels, size, size, generator=generator).to(device)

    def one_pass(amp: bool) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.relu(layers(images)).float().mean()
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    one_pass(False), one_pass(True)
    times: Tuple[list, list] = ([], [])
    for _ in range(repeats):
        times[0].append(one_pass(False))
        times[1].append(one_pass(True))
    return statistics.median(times[0]), statistics.median(times[1])


def resolve_amp(setting: Union[bool, str], device: torch.device) -> Tuple[bool, str]:
    """``train.amp`` as the run will use it, and a line saying how it was chosen ("" for a bool)."""
    if isinstance(setting, bool):
        return setting, ""
    fp32, bf16 = probe_bf16(device)
    use = bf16 <= MARGIN * fp32
    return use, (f"train.amp auto: the probe ran {fp32 * 1e3:.1f} ms in fp32 and {bf16 * 1e3:.1f} ms in bf16 "
                 f"-> {'bf16' if use else 'fp32'} (saved in the run's config.yaml)")
