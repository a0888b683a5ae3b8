"""Model zoo: one builder for every architecture, with the inhibition design as keywords."""
from __future__ import annotations

import functools
import re
from typing import Any, Callable

import torch.nn as nn

from ..design import Design
from ..layers import BlurPool2d, parse_antialias
from ..surgery import pushpullify
from .densenet import DenseNetBC
from .resnet_cifar import ResNetCifar
from .wide_resnet import WideResNet

IMAGENET_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")

# name pattern -> (builder taking the pattern's integer groups, description); the examples are
# what `ppsearch models` lists.
_FAMILIES: list[tuple[str, Callable[..., Callable[..., nn.Module]], str, tuple[str, ...]]] = [
    (r"resnet(\d+)", lambda d: functools.partial(ResNetCifar, d),
     "CIFAR ResNet, depth 6n+2", ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")),
    (r"wrn-(\d+)-(\d+)", lambda d, k: functools.partial(WideResNet, d, k),
     "CIFAR WideResNet-d-k, depth 6n+4", ("wrn-16-4", "wrn-28-10")),
    (r"densenet-bc-(\d+)-(\d+)", lambda d, k: functools.partial(DenseNetBC, d, k),
     "CIFAR DenseNet-BC-L-k, depth 6n+4", ("densenet-bc-40-12", "densenet-bc-100-24")),
]


def _timm_builder(name: str) -> Callable[..., nn.Module]:
    import timm

    if not timm.is_model(name):
        raise ValueError(f"unknown timm model {name!r}; see timm.list_models()")

    def build(in_chans: int, num_classes: int, antialias: str | int) -> nn.Module:
        aa = parse_antialias(antialias)
        kwargs: dict[str, Any] = {}
        if aa:
            if not supports_antialias(name):
                raise ValueError(f"antialias is supported for timm ResNets only, not {name!r}")
            kwargs["aa_layer"] = _blur_pool_class(aa)
        return timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=num_classes, **kwargs)

    return build


def supports_antialias(arch: str) -> bool:
    """Whether ``arch`` can be built anti-aliased: ppsearch's own models and timm's ResNets (their
    ``aa_layer`` hook); other timm families have no such hook."""
    name = arch.removeprefix("timm:")
    return not arch.startswith("timm:") or name.startswith("resnet")


def _blur_pool_class(filt_size: int) -> type[nn.Module]:
    """timm's ResNets take the anti-aliasing layer as a class, called with channels and stride."""

    class FixedBlurPool2d(BlurPool2d):
        def __init__(self, channels: int, stride: int = 2, **_: Any) -> None:  # timm may pass device/dtype
            super().__init__(channels, filt_size, stride)

    return FixedBlurPool2d


def _builder(arch: str) -> Callable[..., nn.Module]:
    if arch.startswith("timm:"):
        return _timm_builder(arch[len("timm:"):])
    if arch in IMAGENET_RESNETS:
        return _timm_builder(arch)
    for pattern, family, _, _ in _FAMILIES:
        match = re.fullmatch(pattern, arch)
        if match:
            return family(*map(int, match.groups()))
    raise ValueError(f"unknown architecture {arch!r}; allowed: {', '.join(list_architectures())}")


def list_architectures() -> list[str]:
    """Named architectures; any depth/width of a family and any ``timm:NAME`` also work."""
    names = [example for _, _, _, examples in _FAMILIES for example in examples]
    return names + list(IMAGENET_RESNETS) + ["timm:NAME"]


def describe_architectures() -> list[tuple[str, str]]:
    rows = [(", ".join(examples), text) for _, _, text, examples in _FAMILIES]
    rows.append((", ".join(IMAGENET_RESNETS), "ImageNet ResNet (timm)"))
    rows.append(("timm:NAME", "any timm ConvNet, push-pull by surgery"))
    return rows


def default_image_size(arch: str) -> int:
    """32 for the CIFAR families, 224 for ImageNet models."""
    return 224 if arch.startswith("timm:") or arch in IMAGENET_RESNETS else 32


def build_model(arch: str, *, in_chans: int = 3, num_classes: int = 10, **design: Any) -> nn.Module:
    """Build ``arch`` with the inhibition ``design`` (``Design`` fields: placement, variant, scale,
    pull_kernel_size, alpha, trainable_alpha, avg_kernel_size, antialias), freshly initialised.

    >>> build_model("resnet20", placement="b1", variant="upsample", scale=2.0, alpha=1.0,
    ...             antialias="tri3", in_chans=3, num_classes=10)  # doctest: +SKIP
    """
    spec = Design.from_dict(design)
    model = _builder(arch)(in_chans=in_chans, num_classes=num_classes, antialias=spec.antialias)
    pushpullify(model, Design.from_dict({**spec.to_dict(), "antialias": "none"}))
    return model
