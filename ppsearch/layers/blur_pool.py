"""Anti-aliased downsampling (Zhang, "Making Convolutional Networks Shift-Invariant Again", 2019).

timm's ``BlurPool2d`` pads symmetrically and needs filters of size >= 2; Zhang's even filters pad
one more pixel on the bottom/right, size 1 is plain subsampling, and reflect padding must not fail on
maps smaller than the filter (deep stages of small-image networks), so ppsearch keeps its own.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError

FILTER_SIZES = range(1, 8)  # binomial filters of 1 to 7 taps, Zhang's sizes


class BlurPool2d(nn.Module):
    """Binomial low-pass filter of size ``filt_size`` (1..7) followed by subsampling by ``stride``."""

    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        if filt_size not in FILTER_SIZES:
            raise UserError(f"filt_size must be in 1..7, got {filt_size!r}")
        self.channels, self.filt_size, self.stride = channels, filt_size, stride
        # Zhang's padding: floor((f-1)/2) before, ceil((f-1)/2) after, as (left, right, top, bottom)
        before, after = (filt_size - 1) // 2, filt_size // 2
        self.pad = (before, after, before, after)
        taps = torch.tensor([math.comb(filt_size - 1, k) for k in range(filt_size)], dtype=torch.float32)
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (kernel / kernel.sum()).expand(channels, 1, -1, -1).contiguous(),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.filt_size == 1:
            return x[:, :, ::self.stride, ::self.stride]
        # reflect needs pad < size; tiny maps fall back to edge replication
        mode = "reflect" if min(x.shape[-2:]) > self.pad[1] else "replicate"
        return F.conv2d(F.pad(x, self.pad, mode=mode), self.filt, stride=self.stride, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}, filt_size={self.filt_size}, stride={self.stride}"

