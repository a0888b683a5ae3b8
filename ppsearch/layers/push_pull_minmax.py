"""The ``"minmax_avg"`` push-pull variant (PushPull-Net, Bennabhaktula et al. 2024).

The pull kernel is ``-k + max(k) + min(k)`` per output filter, its response average-pooled before
the relu (``avg_kernel_size``), and a separate per-channel bias added after the subtraction. The
pull response costs one window-sum map (``_pull``) instead of a second full convolution.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .push_pull import PushPull2d, check_argument, is_integer


def box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """``avg_pool2d(x, size, 1, size // 2, count_include_pad=False)`` as a depthwise box filter
    divided by the count of valid pixels: the same numbers, several times faster on CPU."""
    channels, pad = x.shape[1], size // 2
    total = F.conv2d(x, x.new_ones(channels, 1, size, size), padding=pad, groups=channels)
    count = F.conv2d(x.new_ones(1, 1, *x.shape[-2:]), x.new_ones(1, 1, size, size), padding=pad)
    return total / count


class MinMaxPushPull2d(PushPull2d):
    """Push-pull whose pull kernel is ``-k + max(k) + min(k)``, its response average-pooled.

    Takes :class:`~ppsearch.layers.push_pull.PushPull2d`'s arguments and:

    Args:
        avg_kernel_size: average-pool size applied to the pull response, 0 (off) or odd >= 3.

    The bias (where ``bias=True``) is added after the subtraction and starts U(-1, 1); a trainable
    alpha starts U(0, 1) and is not rectified, as the paper's code does.
    """

    variant = "minmax_avg"
    bias_is_conv_bias = False  # its own bias, added after the subtraction: a conv's bias means something else

    def __init__(self, *args: Any, avg_kernel_size: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        odd = is_integer(avg_kernel_size) and avg_kernel_size >= 3 and avg_kernel_size % 2 == 1
        check_argument(avg_kernel_size == 0 or odd, "avg_kernel_size", avg_kernel_size, "0 or an odd integer >= 3")
        self.avg_kernel_size = int(avg_kernel_size)
        size = self.kernel_size[0]
        self.register_buffer("ones_kernel", self.weight.new_ones(self.groups, self.in_channels // self.groups,
                                                                 size, size), persistent=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.bias is not None:  # PushPull-Net's initial bias
            nn.init.uniform_(self.bias, -1, 1)

    def _initial_alpha(self, alpha: torch.Tensor) -> torch.Tensor:
        return nn.init.uniform_(alpha, 0, 1)

    def pull_weight(self) -> torch.Tensor:
        w = self.weight
        return -w + (w.amax(dim=(1, 2, 3), keepdim=True) + w.amin(dim=(1, 2, 3), keepdim=True))

    def _derive(self) -> torch.Tensor:
        w = self.weight
        return w.amax(dim=(1, 2, 3)) + w.amin(dim=(1, 2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        push = self._push(x, None)
        out = self._combine(push, self._pull(x, push, self._derived()))
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)

    def _pull(self, x: torch.Tensor, push: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        # conv(x, -k + c) = c * conv(x, ones) - conv(x, k): one cheap window-sum map per group
        # instead of a second full convolution.
        window_sum = F.conv2d(x, self.ones_kernel, None, self.stride, self.padding, self.dilation, self.groups)
        if self.groups > 1:
            window_sum = window_sum.repeat_interleave(self.out_channels // self.groups, dim=1)
        pull = torch.addcmul(push.neg(), window_sum, offset.view(1, -1, 1, 1))
        return box_mean(pull, self.avg_kernel_size) if self.avg_kernel_size else pull

    def _variant_repr(self) -> str:
        return f"avg_kernel_size={self.avg_kernel_size}"
