"""Push-pull inhibition as a drop-in replacement for ``nn.Conv2d``.

A push-pull layer pairs each learned (push) kernel ``k`` with a derived (pull) kernel of opposite
contrast and returns ``relu(push) - alpha * relu(pull)``. Two published variants:

- ``"upsample"`` (Strisciuglio et al., NCA 2020; the ICLR 2021 submission): the pull kernel is
  ``-bilinear_upsample(k)`` to a ``pull_kernel_size`` grid (align_corners=True), recomputed from ``k``
  so gradients flow into the push weights. A push bias ``b`` enters the pull response as ``-b``.
- ``"minmax_avg"`` (PushPull-Net, Bennabhaktula et al. 2024): the pull kernel is
  ``-k + max(k) + min(k)`` per output filter, its response average-pooled before the relu, and a
  separate per-channel bias added after the subtraction.

The minmax pull response costs one window-sum map (``_pull_minmax``). For the upsample variant,
``pull_impl="direct"`` is the reference form (a second convolution with the upsampled kernel) and
``"separable"`` computes the same response with far fewer multiply-adds through a fixed depthwise
interpolation bank (``_pull_upsample_separable``). On CPU the direct form measured faster (the bank's
grouped convolutions are slow there; see benchmarks/RESULTS.md), so it is the default.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Design
from ..errors import UserError
from ..library_internals import tensor_version

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


def box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """``avg_pool2d(x, size, 1, size // 2, count_include_pad=False)`` as a depthwise box filter
    divided by the count of valid pixels: the same numbers, several times faster on CPU."""
    channels, pad = x.shape[1], size // 2
    total = F.conv2d(x, x.new_ones(channels, 1, size, size), padding=pad, groups=channels)
    count = F.conv2d(x.new_ones(1, 1, *x.shape[-2:]), x.new_ones(1, 1, size, size), padding=pad)
    return total / count


def _int_pair(value: int | tuple[int, int], name: str) -> int:
    first, second = (value, value) if isinstance(value, int) else tuple(value)
    if first != second:
        raise UserError(f"PushPull2d needs a square {name}, got {value!r}")
    return first


def _tracing() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()


class PushPull2d(nn.Conv2d):
    """``nn.Conv2d`` whose response is inhibited by a derived pull kernel.

    The push kernel is ``self.weight`` (the state-dict key of the conv it replaces), so plain
    checkpoints load into push-pull models. Extra keyword arguments:

    Args:
        variant: ``"upsample"`` or ``"minmax_avg"``.
        scale: upsampling factor h >= 1 of the pull kernel (``"upsample"`` only).
        pull_kernel_size: explicit pull kernel size, >= kernel_size and of its parity (odd for
            odd kernels); overrides ``scale`` (``"upsample"`` only).
        alpha: inhibition strength when fixed.
        trainable_alpha: learn one alpha per output channel, initialised as each paper does
            (``upsample``: U(0.5 - r, 0.5 + r), r = 1/sqrt(in*out), rectified in the forward pass;
            ``minmax_avg``: U(0, 1), not rectified).
        avg_kernel_size: average-pool size applied to the pull response, 0 (off) or odd >= 3
            (``"minmax_avg"`` only).
        pull_impl: ``"direct"`` (the reference form: a second convolution with the upsampled
            kernel) or ``"separable"`` (a fixed depthwise interpolation bank, then a 1x1 contraction
            with the push kernel itself); ``"upsample"`` only, same result either way.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        variant: str = "upsample",
        scale: float = 2.0,
        pull_kernel_size: int | None = None,
        alpha: float = 1.0,
        trainable_alpha: bool = False,
        avg_kernel_size: int = 0,
        pull_impl: str = "direct",
    ) -> None:
        size = _int_pair(kernel_size, "kernel_size")
        dil = _int_pair(dilation, "dilation")
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if size % 2 == 0:
                raise UserError(f"padding='same' needs an odd kernel_size, got {size}")
            padding = dil * (size - 1) // 2
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        _int_pair(self.stride, "stride")
        pad = _int_pair(self.padding, "padding")
        if padding_mode != "zeros":
            raise UserError(f"PushPull2d supports padding_mode='zeros' only, got {padding_mode!r}")
        if pull_impl not in PULL_IMPLS:
            raise UserError(f"unknown pull_impl {pull_impl!r}; allowed: {', '.join(PULL_IMPLS)}")
        design = Design(variant=variant, scale=scale, pull_kernel_size=pull_kernel_size, alpha=alpha,
                        trainable_alpha=trainable_alpha, avg_kernel_size=avg_kernel_size)  # the schema's checks
        variant, scale, pull_kernel_size, alpha = design.variant, design.scale, design.pull_kernel_size, design.alpha
        self.variant = variant

        if variant == "upsample":
            if pull_kernel_size is None:
                pull_kernel_size = default_pull_kernel_size(size, scale)
            elif pull_kernel_size < size or (pull_kernel_size - size) % 2:
                parity = "odd" if size % 2 else "even"
                raise UserError(
                    f"pull_kernel_size must be an {parity} integer >= kernel_size {size}, got {pull_kernel_size!r}")
            self.scale = float(scale)
            self.pull_kernel_size = pull_kernel_size
            self.pull_padding = pad + dil * (pull_kernel_size - size) // 2
            interp = bilinear_matrix(size, pull_kernel_size, dtype or torch.get_default_dtype()).to(device)
            # Depthwise interpolation bank: horizontal taps (s filters of length p per input channel),
            # then vertical taps (s more per horizontally filtered map).
            self.register_buffer("bank_h", interp.T.reshape(size, 1, 1, -1).repeat(in_channels, 1, 1, 1),
                                 persistent=False)
            self.register_buffer("bank_v", interp.T.reshape(size, 1, -1, 1).repeat(in_channels * size, 1, 1, 1),
                                 persistent=False)
        else:
            self.avg_kernel_size = avg_kernel_size
            if self.bias is not None:
                nn.init.uniform_(self.bias, -1, 1)
            self.register_buffer("ones_kernel", torch.ones(groups, in_channels // groups, size, size, device=device, dtype=dtype),
                                 persistent=False)

        if trainable_alpha:
            alpha_param = torch.empty(out_channels, device=device, dtype=dtype)
            if variant == "upsample":
                r = 1 / math.sqrt(in_channels * out_channels)
                nn.init.uniform_(alpha_param, 0.5 - r, 0.5 + r)
            else:
                nn.init.uniform_(alpha_param, 0, 1)
            self.alpha = nn.Parameter(alpha_param)
        else:
            self.alpha = float(alpha)

        self.pull_impl = pull_impl
        self._cache: tuple[tuple, tuple[torch.Tensor, ...]] | None = None

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, **design) -> PushPull2d:
        """A push-pull layer with ``conv``'s geometry whose push kernel (and bias) are ``conv``'s."""
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                    conv.weight.device, conv.weight.dtype, **design)
        with torch.no_grad():
            layer.weight.copy_(conv.weight)
            if conv.bias is not None and layer.variant == "upsample":
                layer.bias.copy_(conv.bias)
        layer.train(conv.training)
        return layer

    @property
    def trainable_alpha(self) -> bool:
        return isinstance(self.alpha, nn.Parameter)

    def pull_weight(self) -> torch.Tensor:
        """The explicit pull kernel, as the papers define it."""
        w = self.weight
        if self.variant == "upsample":
            p = self.pull_kernel_size
            return -F.interpolate(w, size=(p, p), mode="bilinear", align_corners=True)
        return -w + (w.amax(dim=(1, 2, 3), keepdim=True) + w.amin(dim=(1, 2, 3), keepdim=True))

    def _derive(self) -> tuple[torch.Tensor, ...]:
        """What the forward pass derives from the push weights."""
        w = self.weight
        if self.variant == "minmax_avg":
            return (w.amax(dim=(1, 2, 3)) + w.amin(dim=(1, 2, 3)),)
        if self.pull_impl == "direct":
            return (self.pull_weight(),)
        # contraction weight ordered (out, in, horizontal tap, vertical tap) like the bank's channels
        return (-w.transpose(2, 3).reshape(w.shape[0], -1, 1, 1),)

    def _derived(self) -> tuple[torch.Tensor, ...]:
        # In inference the derived kernels are reused until the push weights change (in place, as
        # an optimizer or load_state_dict does, or by moving to another device or dtype).
        if self.training or torch.is_grad_enabled() or _tracing():
            return self._derive()
        key = (tensor_version(self.weight), self.weight.data_ptr(), self.weight.dtype, self.weight.device)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._derive())
        return self._cache[1]

    def _alpha(self) -> torch.Tensor | float:
        if not self.trainable_alpha:
            return self.alpha
        alpha = self.alpha.view(1, -1, 1, 1)
        return F.relu(alpha) if self.variant == "upsample" else alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        derived = self._derived()
        if self.variant == "upsample":
            push = self._conv_forward(x, self.weight, self.bias)
            pull = (self._pull_upsample_separable(x, derived[0]) if self.pull_impl == "separable"
                    else self._pull_upsample_direct(x, derived[0]))
            return self._combine(push, pull)
        push = self._conv_forward(x, self.weight, None)
        out = self._combine(push, self._pull_minmax(x, push, derived[0]))
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)

    def _combine(self, push: torch.Tensor, pull: torch.Tensor) -> torch.Tensor:
        """relu(push) - alpha * relu(pull), in as few passes over memory as autograd allows."""
        if self.trainable_alpha:
            return torch.addcmul(push.relu_(), self._alpha(), pull.relu_(), value=-1)
        return torch.sub(push.relu_(), pull.relu_(), alpha=self.alpha)

    def _pull_upsample_direct(self, x: torch.Tensor, pull_weight: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else -self.bias
        return F.conv2d(x, pull_weight, bias, self.stride, self.pull_padding, self.dilation, self.groups)

    def _pull_upsample_separable(self, x: torch.Tensor, contraction: torch.Tensor) -> torch.Tensor:
        # conv(x, A k A^T) = sum_{a,b} k[a, b] * conv(x, A[:, a] A[:, b]^T): filter x with the fixed
        # separable bank of s*s interpolation filters, then contract with k (a 1x1 convolution).
        (stride, _), (dil, _), pad = self.stride, self.dilation, self.pull_padding
        s = self.kernel_size[0]
        z = F.conv2d(x, self.bank_h, None, (1, stride), (0, pad), (1, dil), self.in_channels)
        z = F.conv2d(z, self.bank_v, None, (stride, 1), (pad, 0), (dil, 1), self.in_channels * s)
        bias = None if self.bias is None else -self.bias
        return F.conv2d(z, contraction, bias, groups=self.groups)

    def _pull_minmax(self, x: torch.Tensor, push: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        # conv(x, -k + c) = c * conv(x, ones) - conv(x, k): one cheap window-sum map per group
        # instead of a second full convolution.
        window_sum = F.conv2d(x, self.ones_kernel, None, self.stride, self.padding, self.dilation, self.groups)
        if self.groups > 1:
            window_sum = window_sum.repeat_interleave(self.out_channels // self.groups, dim=1)
        pull = torch.addcmul(push.neg(), window_sum, offset.view(1, -1, 1, 1))
        return box_mean(pull, self.avg_kernel_size) if self.avg_kernel_size else pull

    def extra_repr(self) -> str:
        text = super().extra_repr() + f", variant={self.variant}"
        if self.variant == "upsample":
            text += f", scale={self.scale}, pull_kernel_size={self.pull_kernel_size}, pull_impl={self.pull_impl}"
        else:
            text += f", avg_kernel_size={self.avg_kernel_size}"
        alpha = "trainable" if self.trainable_alpha else self.alpha
        return text + f", alpha={alpha}"
