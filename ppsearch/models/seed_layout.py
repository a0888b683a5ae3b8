"""Checkpoints of the seed paper's code (nicstrisc/Push-Pull-CNN-layer, published in its ``models/``
folder): their parameter names mapped onto ppsearch's by rule, and the normalisation they were
trained with.

The seed code names a CIFAR ResNet ``conv1, bn1, layerN.i.{conv1|pp1, bn1, conv2|pp2, bn2,
downsample.k}, fc`` and a DenseNet-BC ``features.{conv0, denseblockN.denselayerI.{norm1, conv1, norm2,
conv2}, transitionN.{norm, conv}, norm_final}, classifier``. A push-pull layer (``PPmodule2d``) keeps
its kernel in a child ``push`` and a trainable alpha of shape (1, C, 1, 1); its anti-aliased blocks
hold a ``Downsample`` whose binomial filter is a persistent ``filt`` buffer.
"""
from __future__ import annotations

import re
from collections.abc import Callable

import torch
import torch.nn as nn

from ..errors import UserError
from ..layers import BlurPool2d, PushPull2d
from .densenet import DenseNetBC
from .resnet_cifar import ResNetCifar
from .weights import load_weights

# test_perturbation.py / train.py of the seed code: per-channel mean and std as pixel values / 255
SEED_CODE_NORMALISATION = (tuple(v / 255 for v in (125.3, 123.0, 113.9)), tuple(v / 255 for v in (63.0, 62.1, 66.7)))
SEED_CODE_ARCHITECTURES = (ResNetCifar, DenseNetBC)

PUSH = ".push."  # the seed code's push-pull module keeps its kernel in this child
FILTER = ".filt"  # the seed code's persistent blur filter buffer


def _resnet_name(name: str) -> str:
    name = re.sub(r"^conv1\.", "stem.0.", name)
    name = re.sub(r"^bn1\.", "stem.1.", name)
    name = re.sub(r"^layer(\d+)\.", lambda m: f"stages.{int(m[1]) - 1}.", name)
    name = re.sub(r"\.pp([12])\.", r".conv\1.", name)
    return name.replace(".downsample.", ".shortcut.")


_DENSE_LAYER_PARTS = {"norm1": "bottleneck.0", "conv1": "bottleneck.2", "norm2": "bn", "conv2": "conv"}


def _densenet_name(name: str) -> str:
    name = re.sub(r"^features\.conv0\.", "stem.", name)
    name = re.sub(r"^features\.denseblock(\d+)\.denselayer(\d+)\.(norm1|conv1|norm2|conv2)\.",
                  lambda m: f"stages.{2 * (int(m[1]) - 1)}.{int(m[2]) - 1}.{_DENSE_LAYER_PARTS[m[3]]}.", name)
    name = re.sub(r"^features\.transition(\d+)\.(norm|conv)\.",
                  lambda m: f"stages.{2 * int(m[1]) - 1}.{0 if m[2] == 'norm' else 2}.", name)
    name = re.sub(r"^features\.norm_final\.", "head.0.", name)
    return re.sub(r"^classifier\.", "fc.", name)


_RENAMERS: dict[type[nn.Module], Callable[[str], str]] = {ResNetCifar: _resnet_name, DenseNetBC: _densenet_name}


def load_seed_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` (a seed-code state dict, keys with or without ``module.``) into ``model``.

    Beyond names and shapes, checked because they would pass unseen: every push-pull layer of the
    file is one in ``model`` and the reverse (a ``placement`` other than the training one is refused
    rather than loaded into plain convolutions), and every stored blur filter equals the one
    ``model`` applies.
    """
    rename = _RENAMERS[type(model)]
    modules = dict(model.named_modules())
    renamed: dict[str, torch.Tensor] = {}
    file_names: dict[str, str] = {}
    push_pull_in_file: set[str] = set()
    for file_name, tensor in state.items():
        bare = file_name.removeprefix("module.")  # nn.DataParallel's prefix
        if PUSH in bare:
            push_pull_in_file.add(rename(bare.split(PUSH)[0] + "."))
            bare = bare.replace(PUSH, ".")
        name = rename(bare)
        if name.endswith(".alpha") and tensor.dim() == 4:  # (1, C, 1, 1) there, (C,) here
            tensor = tensor.flatten()
        if name.endswith(FILTER):
            _check_filter(modules.get(name.removesuffix(FILTER)), tensor, file_name, source)
            continue
        renamed[name] = tensor
        file_names[name] = file_name
    load_weights(model, renamed, source, file_names)
    push_pull_here = {f"{name}." for name, module in modules.items() if isinstance(module, PushPull2d)}
    for prefix in sorted(push_pull_in_file ^ push_pull_here):
        layer = prefix.removesuffix(".")
        if prefix in push_pull_in_file:
            raise UserError(f"{source} has a push-pull layer at {layer!r}, where this placement builds a plain "
                            f"convolution: pass the placement the model was trained with")
        raise UserError(f"{source} has a plain convolution at {layer!r}, where this placement builds a push-pull "
                        f"layer: pass the placement the model was trained with")


def _check_filter(module: nn.Module | None, stored: torch.Tensor, file_name: str, source: str) -> None:
    if not isinstance(module, BlurPool2d):
        raise UserError(f"{source} holds blur filter {file_name!r} where the model has no blur: pass the "
                        f"antialias filter size the model was trained with")
    if tuple(stored.shape) != tuple(module.filt.shape) or not torch.allclose(stored.float(), module.filt):
        raise UserError(f"{source}: blur filter {file_name!r} of shape {tuple(stored.shape)} is not the "
                        f"{module.filt_size}-tap binomial filter {tuple(module.filt.shape)} of this design: pass the "
                        f"antialias filter size the model was trained with")
