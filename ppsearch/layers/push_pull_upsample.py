"""The ``"upsample"`` push-pull variant (Strisciuglio et al., NCA 2020; the ICLR 2021 submission).

The pull kernel is ``-bilinear_upsample(k)`` to a ``pull_kernel_size`` grid (align_corners=True),
recomputed from ``k`` so gradients flow into the push weights. A push bias ``b`` enters the pull
response as ``-b``. ``pull_impl="direct"`` is the reference form (a second convolution with the
upsampled kernel); ``"separable"`` computes the same response with far fewer multiply-adds through a
fixed depthwise interpolation bank (``_pull_separable``). On CPU the direct form measured faster (the
bank's grouped convolutions are slow there; see benchmarks/RESULTS.md), so it is the default.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .push_pull import PushPull2d, check_argument, is_integer, is_real

PULL_IMPLS = ("direct", "separable")


def default_pull_kernel_size(kernel_size: int, scale: float) -> int:
    """The papers' pull size: floor(s * h), plus one where its parity differs from s (3, h=2 -> 7).

    The parity rule keeps push and pull centred on the same pixel; for odd s it is the papers' rule.
    """
    size = math.floor(kernel_size * scale)
    return size + (size - kernel_size) % 2


def bilinear_matrix(src: int, dst: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(dst, src) matrix of 1-D linear interpolation with align_corners=True, so that
    ``upsample(k) = A @ k @ A.T`` for a square kernel ``k``."""
    pos = torch.linspace(0, src - 1, dst, dtype=torch.float64) if dst > 1 else torch.zeros(1, dtype=torch.float64)
    lo = pos.floor().long().clamp(max=src - 1)
    hi = (lo + 1).clamp(max=src - 1)
    frac = pos - lo
    matrix = torch.zeros(dst, src, dtype=torch.float64)
    rows = torch.arange(dst)
    matrix.index_put_((rows, lo), 1 - frac, accumulate=True)
    matrix.index_put_((rows, hi), frac, accumulate=True)
    return matrix.to(dtype)


class UpsamplePushPull2d(PushPull2d):
    """Push-pull whose pull kernel is the push kernel negated and bilinearly upsampled.

    Takes :class:`~ppsearch.layers.push_pull.PushPull2d`'s arguments and:

    Args:
        scale: upsampling factor h >= 1 of the pull kernel; the pull size is
            :func:`default_pull_kernel_size` (3 -> 7 at h = 2).
        pull_kernel_size: explicit pull kernel size, >= kernel_size and of its parity (odd for
            odd kernels); overrides ``scale``.
        pull_impl: ``"direct"`` (the reference form: a second convolution with the upsampled
            kernel) or ``"separable"`` (a fixed depthwise interpolation bank, then a 1x1 contraction
            with the push kernel itself); same result either way.

    A trainable alpha starts U(0.5 - r, 0.5 + r), r = 1/sqrt(in*out), and is rectified in the
    forward pass, as the paper's code does.
    """

    variant = "upsample"
    bias_is_conv_bias = True  # the push convolution's bias, entering the pull response negated

    def __init__(self, *args: Any, scale: float = 2.0, pull_kernel_size: int | None = None,
                 pull_impl: str = "direct", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        size, dil, pad = self.kernel_size[0], self.dilation[0], self.padding[0]
        check_argument(is_real(scale) and scale >= 1, "scale", scale, "a number >= 1")
        parity = "odd" if size % 2 else "even"
        check_argument(pull_kernel_size is None or (is_integer(pull_kernel_size) and pull_kernel_size >= size
                                                    and (pull_kernel_size - size) % 2 == 0),
                       "pull_kernel_size", pull_kernel_size, f"None or an {parity} integer >= kernel_size {size}")
        check_argument(pull_impl in PULL_IMPLS, "pull_impl", pull_impl, f"one of {', '.join(PULL_IMPLS)}")
        self.scale = float(scale)
        self.pull_kernel_size = default_pull_kernel_size(size, scale) if pull_kernel_size is None \
            else int(pull_kernel_size)
        self.pull_impl = pull_impl
        self.pull_padding = pad + dil * (self.pull_kernel_size - size) // 2
        interp = bilinear_matrix(size, self.pull_kernel_size, self.weight.dtype).to(self.weight.device)
        # Depthwise interpolation bank: horizontal taps (s filters of length p per input channel),
        # then vertical taps (s more per horizontally filtered map).
        self.register_buffer("bank_h", interp.T.reshape(size, 1, 1, -1).repeat(self.in_channels, 1, 1, 1),
                             persistent=False)
        self.register_buffer("bank_v", interp.T.reshape(size, 1, -1, 1).repeat(self.in_channels * size, 1, 1, 1),
                             persistent=False)

    def _initial_alpha(self, alpha: torch.Tensor) -> torch.Tensor:
        r = 1 / math.sqrt(self.in_channels * self.out_channels)
        return nn.init.uniform_(alpha, 0.5 - r, 0.5 + r)

    def _alpha_per_channel(self) -> torch.Tensor:
        return F.relu(super()._alpha_per_channel())

    def pull_weight(self) -> torch.Tensor:
        p = self.pull_kernel_size
        return -F.interpolate(self.weight, size=(p, p), mode="bilinear", align_corners=True)

    def _derive(self) -> torch.Tensor:
        if self.pull_impl == "direct":
            return self.pull_weight()
        # contraction weight ordered (out, in, horizontal tap, vertical tap) like the bank's channels
        w = self.weight
        return -w.transpose(2, 3).reshape(w.shape[0], -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        derived = self._derived()
        push = self._push(x, self.bias)
        pull = self._pull_separable(x, derived) if self.pull_impl == "separable" else self._pull_direct(x, derived)
        return self._combine(push, pull)

    def _pull_direct(self, x: torch.Tensor, pull_weight: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else -self.bias
        return F.conv2d(x, pull_weight, bias, self.stride, self.pull_padding, self.dilation, self.groups)

    def _pull_separable(self, x: torch.Tensor, contraction: torch.Tensor) -> torch.Tensor:
        # conv(x, A k A^T) = sum_{a,b} k[a, b] * conv(x, A[:, a] A[:, b]^T): filter x with the fixed
        # separable bank of s*s interpolation filters, then contract with k (a 1x1 convolution).
        (stride, _), (dil, _), pad = self.stride, self.dilation, self.pull_padding
        s = self.kernel_size[0]
        z = F.conv2d(x, self.bank_h, None, (1, stride), (0, pad), (1, dil), self.in_channels)
        z = F.conv2d(z, self.bank_v, None, (stride, 1), (pad, 0), (dil, 1), self.in_channels * s)
        bias = None if self.bias is None else -self.bias
        return F.conv2d(z, contraction, bias, groups=self.groups)

    def _variant_repr(self) -> str:
        return f"scale={self.scale}, pull_kernel_size={self.pull_kernel_size}, pull_impl={self.pull_impl}"
