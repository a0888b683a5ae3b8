"""Push-pull inhibition as a drop-in replacement for ``nn.Conv2d``: what every variant shares.

A push-pull layer pairs each learned (push) kernel ``k`` with a derived (pull) kernel of opposite
contrast and returns ``relu(push) - alpha * relu(pull)``, alpha fixed or learned per output channel.
The variants differ in how the pull kernel is derived, each in its own module:

- ``"upsample"`` (:class:`~ppsearch.layers.push_pull_upsample.UpsamplePushPull2d`; Strisciuglio et
  al., NCA 2020, and the ICLR 2021 submission);
- ``"minmax_avg"`` (:class:`~ppsearch.layers.push_pull_minmax.MinMaxPushPull2d`; PushPull-Net,
  Bennabhaktula et al. 2024).

``PushPull2d(..., variant=NAME, ...)`` builds the class registered under that name (as
:func:`~ppsearch.layers.create_push_pull.create_push_pull` does); every variant's layer is a
``PushPull2d``.
"""
from __future__ import annotations

import abc
import inspect
import math
import numbers
from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from ..library_internals import tensor_version


def is_real(value: Any) -> bool:
    """A finite real number (numpy's included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    """An integer (numpy's included), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_argument(ok: bool, name: str, value: Any, allowed: str) -> None:
    """Raise UserError naming the argument, its value and what is allowed, unless ``ok``."""
    if not ok:
        raise UserError(f"{name} must be {allowed}, got {value!r}")


def _int_pair(value: int | tuple[int, int], name: str) -> int:
    first, second = (value, value) if isinstance(value, int) else tuple(value)
    if first != second:
        raise UserError(f"PushPull2d needs a square {name}, got {value!r}")
    return first


def _tracing() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()


# Only supplies a default (upsample's pull size, which an explicit pull_kernel_size overrides too),
# so a variant that derives nothing from it ignores it whatever its value.
_DEFAULT_ONLY_KEYWORDS = ("scale",)


def _variant_keywords(layer_class: type) -> dict[str, Any]:
    """The keywords a variant adds to PushPull2d's, with their defaults."""
    parameters = inspect.signature(layer_class.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


class _BuiltByVariant(abc.ABCMeta):
    """Calling ``PushPull2d`` itself builds the class its ``variant`` keyword names (each variant's
    class registers itself under its name); calling a variant's class builds that class."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is not PushPull2d:
            return super().__call__(*args, **kwargs)
        variant = kwargs.pop("variant", "upsample")
        layer_class = PushPull2d.variants.get(variant)
        if layer_class is None:
            raise UserError(f"unknown variant {variant!r}; allowed: {', '.join(PushPull2d.variants)}")
        # a design sets every variant's keywords: another variant's is accepted at its default
        own = _variant_keywords(layer_class)
        for other, other_class in PushPull2d.variants.items():
            for name, default in _variant_keywords(other_class).items():
                if name in own or name not in kwargs:
                    continue
                value = kwargs.pop(name)
                if value != default and name not in _DEFAULT_ONLY_KEYWORDS:
                    raise UserError(f"{name} applies to variant={other!r} only, got {name}={value!r} "
                                    f"with variant={variant!r}")
        return layer_class(*args, **kwargs)


class PushPull2d(nn.Conv2d, metaclass=_BuiltByVariant):
    """``nn.Conv2d`` whose response is inhibited by a pull kernel derived from its own kernel.

    The push kernel is ``self.weight`` (the state-dict key of the conv it replaces), so plain
    checkpoints load into push-pull models. Takes ``nn.Conv2d``'s arguments (square kernels,
    strides and dilations, zero padding) and the keywords:

    Args:
        variant: ``"upsample"`` (keywords ``scale``, ``pull_kernel_size``, ``pull_impl``: see
            :class:`~ppsearch.layers.push_pull_upsample.UpsamplePushPull2d`) or ``"minmax_avg"``
            (keyword ``avg_kernel_size``: see :class:`~ppsearch.layers.push_pull_minmax.MinMaxPushPull2d`).
            Where a variant does not use another's keyword, that keyword must keep its default
            (``scale`` excepted: it only supplies a default and is ignored where unused).
        alpha: inhibition strength when fixed, a finite number >= 0.
        trainable_alpha: learn one alpha per output channel, initialised as the variant's paper does.
    """

    variant: ClassVar[str]  # the name the class is registered and built by
    variants: ClassVar[dict[str, type[PushPull2d]]] = {}  # variant name -> its class, in registration order
    bias_is_conv_bias: ClassVar[bool]  # whether self.bias plays nn.Conv2d's role (so from_conv keeps it)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "variant" in cls.__dict__:
            PushPull2d.variants[cls.variant] = cls

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
        alpha: float = 1.0,
        trainable_alpha: bool = False,
    ) -> None:
        size = _int_pair(kernel_size, "kernel_size")
        dil = _int_pair(dilation, "dilation")
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if size % 2 == 0:
                raise UserError(f"padding='same' needs an odd kernel_size, got {size}")
            padding = dil * (size - 1) // 2
        if padding_mode != "zeros":
            raise UserError(f"PushPull2d supports padding_mode='zeros' only, got {padding_mode!r}")
        check_argument(is_real(alpha) and alpha >= 0, "alpha", alpha, "a finite number >= 0")
        check_argument(isinstance(trainable_alpha, bool), "trainable_alpha", trainable_alpha, "True or False")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        _int_pair(self.stride, "stride")
        _int_pair(self.padding, "padding")
        if trainable_alpha:
            self.alpha = nn.Parameter(self._initial_alpha(torch.empty(out_channels, device=device, dtype=dtype)))
        else:
            self.alpha = float(alpha)
        self._cache: tuple[tuple, torch.Tensor] | None = None

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, **keywords: Any) -> PushPull2d:
        """A push-pull layer with ``conv``'s geometry whose push kernel (and bias, where the variant's
        bias is a convolution bias) are ``conv``'s."""
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                    conv.weight.device, conv.weight.dtype, **keywords)
        with torch.no_grad():
            layer.weight.copy_(conv.weight)
            if conv.bias is not None and layer.bias_is_conv_bias:
                layer.bias.copy_(conv.bias)
        layer.train(conv.training)
        return layer

    @property
    def trainable_alpha(self) -> bool:
        return isinstance(self.alpha, nn.Parameter)

    @abc.abstractmethod
    def _initial_alpha(self, alpha: torch.Tensor) -> torch.Tensor:
        """``alpha`` (one per output channel) filled with the variant's initial values."""

    def _alpha_per_channel(self) -> torch.Tensor:
        """The trainable alpha as the forward pass applies it, broadcastable over (N, C, H, W)."""
        return self.alpha.view(1, -1, 1, 1)

    @abc.abstractmethod
    def pull_weight(self) -> torch.Tensor:
        """The explicit pull kernel, as the variant's paper defines it."""

    @abc.abstractmethod
    def _derive(self) -> torch.Tensor:
        """What the forward pass derives from the push weights (cached in inference)."""

    def _derived(self) -> torch.Tensor:
        # In inference the derived tensor is reused until the push weights change (in place, as
        # an optimizer or load_state_dict does, or by moving to another device or dtype).
        if self.training or torch.is_grad_enabled() or _tracing():
            return self._derive()
        key = (tensor_version(self.weight), self.weight.data_ptr(), self.weight.dtype, self.weight.device)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._derive())
        return self._cache[1]

    def _push(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return F.conv2d(x, self.weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def _combine(self, push: torch.Tensor, pull: torch.Tensor) -> torch.Tensor:
        """relu(push) - alpha * relu(pull), in as few passes over memory as autograd allows."""
        if self.trainable_alpha:
            return torch.addcmul(push.relu_(), self._alpha_per_channel(), pull.relu_(), value=-1)
        return torch.sub(push.relu_(), pull.relu_(), alpha=self.alpha)

    @abc.abstractmethod
    def _variant_repr(self) -> str:
        """The variant's keywords, for extra_repr."""

    def extra_repr(self) -> str:
        alpha = "trainable" if self.trainable_alpha else self.alpha
        return f"{super().extra_repr()}, variant={self.variant}, {self._variant_repr()}, alpha={alpha}"
