"""Model zoo: one builder for every architecture, with the inhibition design as keywords."""
from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from ..config import check_design, parse_antialias
from ..errors import UserError
from ..layers import BlurPool2d
from .densenet import DenseNetBC
from .resnet_cifar import ResNetCifar
from .surgery import pushpullify
from .wide_resnet import WideResNet

IMAGENET_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")

# name pattern -> (model class taking the pattern's integer groups, description, the examples that
# `ppsearch models` lists)
_FAMILIES: list[tuple[str, type[nn.Module], str, tuple[str, ...]]] = [
    (r"resnet(\d+)", ResNetCifar, "CIFAR ResNet, depth 6n+2",
     ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")),
    (r"wrn-(\d+)-(\d+)", WideResNet, "CIFAR WideResNet-d-k, depth 6n+4", ("wrn-16-4", "wrn-28-10")),
    (r"densenet-bc-(\d+)-(\d+)", DenseNetBC, "CIFAR DenseNet-BC-L-k, depth 6n+4",
     ("densenet-bc-40-12", "densenet-bc-100-24")),
]


def _timm_name(arch: str) -> str | None:
    """The timm model an architecture name stands for, if it is one."""
    return arch.removeprefix("timm:") if arch.startswith("timm:") or arch in IMAGENET_RESNETS else None


def _family_match(arch: str) -> tuple[type[nn.Module], tuple[int, ...]] | None:
    """The CIFAR family class an architecture name belongs to, with its integers (depth, width)."""
    for pattern, cls, _, _ in _FAMILIES:
        match = re.fullmatch(pattern, arch)
        if match:
            return cls, tuple(map(int, match.groups()))
    return None


def architecture_problem(arch: str) -> str | None:
    """Why ``arch`` names no buildable architecture, or None when it does (nothing is built)."""
    timm_name = _timm_name(arch)
    if timm_name is not None:
        import timm

        return None if timm.is_model(timm_name) else f"unknown timm model {timm_name!r}; see timm.list_models()"
    family = _family_match(arch)
    if family is not None:
        cls, numbers = family
        return cls.shape_problem(*numbers)
    return f"unknown architecture {arch!r}; allowed: {', '.join(list_architectures())}"


def _timm_builder(name: str) -> Callable[..., nn.Module]:
    import timm

    def build(in_chans: int, num_classes: int, antialias: str | int, antialias_position: str) -> nn.Module:
        aa = parse_antialias(antialias)
        kwargs: dict[str, Any] = {}
        if aa:
            problem = antialias_problem(f"timm:{name}", antialias_position)
            if problem:
                raise UserError(problem)
            kwargs["aa_layer"] = _blur_pool_class(aa)
        return timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=num_classes, **kwargs)

    return build


def antialias_problem(arch: str, position: str = "after_conv1") -> str | None:
    """Why ``arch`` cannot be built anti-aliased with the blur at ``position`` (the design's
    ``antialias_position``), or None when it can: ppsearch's own models take either position,
    timm's ResNets after conv1 only (their ``aa_layer`` hook, Zhang's placement), and other timm
    families have no such hook."""
    timm_name = _timm_name(arch)
    if timm_name is None:
        return None
    if not timm_name.startswith("resnet"):
        return f"antialias is supported for timm ResNets only, not {timm_name!r}"
    if position != "after_conv1":
        return (f"timm's ResNets place the blur after conv1 (Zhang), not at the block input (antialias_position "
                f"{position}): use antialias_position=after_conv1 for {timm_name!r}")
    return None


def _blur_pool_class(filt_size: int) -> type[nn.Module]:
    """timm's ResNets take the anti-aliasing layer as a class, called with channels and stride."""

    class FixedBlurPool2d(BlurPool2d):
        def __init__(self, channels: int, stride: int = 2, **_: Any) -> None:  # timm may pass device/dtype
            super().__init__(channels, filt_size, stride)

    return FixedBlurPool2d


def _builder(arch: str) -> Callable[..., nn.Module]:
    problem = architecture_problem(arch)
    if problem:
        raise UserError(problem)
    timm_name = _timm_name(arch)
    if timm_name is not None:
        return _timm_builder(timm_name)
    cls, numbers = _family_match(arch)
    return functools.partial(cls, *numbers)


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
    return 224 if _timm_name(arch) is not None else 32


def build_model(arch: str, *, in_chans: int = 3, num_classes: int = 10, **design: Any) -> nn.Module:
    """Build ``arch`` with the inhibition ``design`` (``Design`` fields: placement, variant, scale,
    pull_kernel_size, alpha, trainable_alpha, avg_kernel_size, antialias), freshly initialised; one
    whose parameters would not fit in this machine's memory is refused before anything is allocated.

    >>> build_model("resnet20", placement="b1", variant="upsample", scale=2.0, alpha=1.0,
    ...             antialias="tri3", in_chans=3, num_classes=10)  # doctest: +SKIP
    """
    spec = check_design(design)
    if in_chans < 1:
        raise UserError(f"in_chans must be >= 1, got {in_chans}")
    if num_classes < 2:
        raise UserError(f"num_classes must be >= 2 (a classifier tells classes apart), got {num_classes}")
    base, per_channel, per_class = _parameter_costs(arch, spec.antialias, spec.antialias_position)
    params = base + (in_chans - 1) * per_channel + (num_classes - 2) * per_class
    needed = params * torch.get_default_dtype().itemsize
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > memory:  # refused here, not by the allocator (or the OOM killer) halfway through the build
        raise UserError(f"{arch} with in_chans={in_chans} and num_classes={num_classes} has about {params:,} "
                        f"parameters ({needed / 2**30:,.1f} GiB), more than this machine's {memory / 2**30:,.1f} GiB "
                        f"of memory")
    model = _builder(arch)(in_chans=in_chans, num_classes=num_classes, antialias=spec.antialias,
                           antialias_position=spec.antialias_position)
    pushpullify(model, dataclasses.replace(spec, antialias="none"))
    return model


@functools.lru_cache(maxsize=64)
def _parameter_costs(arch: str, antialias: str | int, antialias_position: str) -> tuple[int, int, int]:
    """The parameters of ``arch`` with 1 input channel and 2 classes, and what each further input
    channel and class adds: a model is linear in both (the stem's and the classifier's weights), so
    three builds on the meta device, which allocates nothing, size it for any channels and classes
    (a build at the asked sizes could overflow torch's 64-bit sizes)."""
    build = _builder(arch)

    def count(in_chans: int, num_classes: int) -> int:
        with torch.device("meta"):
            model = build(in_chans=in_chans, num_classes=num_classes, antialias=antialias,
                          antialias_position=antialias_position)
        return sum(p.numel() for p in model.parameters())

    base = count(1, 2)
    return base, count(2, 2) - base, count(1, 3) - base


def input_problem(model: nn.Module, arch: str, in_chans: int, image_size: int) -> str | None:
    """Why ``model`` cannot classify ``in_chans``-channel images of ``image_size`` pixels, or None:
    one forward pass of one blank image in eval mode (ViTs and MLP-Mixers are built for one size; a
    net's fixed pooling may need more pixels than small images have)."""
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_chans, image_size, image_size, device=param.device, dtype=param.dtype))
    except (AssertionError, RuntimeError) as error:  # timm asserts input sizes; torch's layers raise RuntimeError
        return (f"{arch} does not run on {in_chans}-channel {image_size}x{image_size} images: "
                f"{type(error).__name__}: {str(error).splitlines()[0]}")
    finally:
        model.train(was_training)
    return None
