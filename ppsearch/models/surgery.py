"""Model surgery: put push-pull inhibition into any torchvision or timm ConvNet.

Where a convolution sits ("stem", "stage 1", ...) is read from one traced forward pass:
- models that declare timm's ``feature_info`` (timm models, ppsearch's own zoo) are split at the
  modules it names, each of which ends one resolution level;
- other models (torchvision) are split where the output resolution of a k x k (k > 1) conv drops.
The first convolution executed is the stem ("pp"); every later convolution of a level that ends in a
block container (not e.g. timm's ``act1``) belongs to the next stage.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from ..config import Design, check_design
from ..errors import UserError
from ..layers import PushPull2d


class Change(NamedTuple):
    """One convolution swapped for a push-pull layer."""

    name: str
    stage: int  # 0 = the stem conv, k = stage k, -1 = outside the stages (head, deep-stem extras)
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    groups: int


def _eligible(module: nn.Module) -> bool:
    # exactly nn.Conv2d: subclasses (timm's Conv2dSame, PushPull2d itself) change the forward pass
    return (type(module) is nn.Conv2d and module.kernel_size[0] == module.kernel_size[1] > 1
            and module.padding_mode == "zeros" and not isinstance(module.padding, str))


def _first_conv_in_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise UserError("model has no Conv2d layer to put push-pull inhibition into")


def _fixed_image_size(model: nn.Module) -> int | None:
    """The one image size ``model`` takes, where timm built it for one (ViTs, MLP-Mixers, Swins:
    ``pretrained_cfg["fixed_input_size"]``); None for a model that takes any size."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return cfg["input_size"][-1] if cfg.get("fixed_input_size") else None


def conv_stages(model: nn.Module, image_size: int | None = None) -> dict[str, int]:
    """Stage of every convolution (see the module docstring), from one forward pass in eval mode on
    an image of ``image_size`` (default: the size the model is built for, else 64)."""
    image_size = image_size or _fixed_image_size(model) or 64
    modules = dict(model.named_modules())
    convs = {module: name for name, module in modules.items() if isinstance(module, nn.Conv2d)}
    feature_info = getattr(model, "feature_info", None)
    boundaries = {}
    if feature_info:
        boundaries = {modules[info["module"]]: info["module"] for info in feature_info}
    events: list[tuple[str, str, int]] = []  # (kind, name, output height) in execution order

    def record(kind: str, name: str):
        def hook(module, inputs, output):
            events.append((kind, name, output.shape[-2]))
        return hook

    handles = [m.register_forward_hook(record("conv", n)) for m, n in convs.items()]
    handles += [m.register_forward_hook(record("end", n)) for m, n in boundaries.items()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            param = next(model.parameters())
            x = torch.zeros(1, _first_conv_in_channels(model), image_size, image_size,
                            device=param.device, dtype=param.dtype)
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    levels: list[tuple[list[str], bool]] = []  # (convs, ends in a block container)
    current: list[str] = []
    if boundaries:
        for kind, name, _ in events:
            if kind == "conv":
                current.append(name)
            elif current:
                container = len(list(modules[name].children())) > 0
                levels.append((current, container))
                current = []
    else:
        last_height = None
        for _, name, height in events:
            if modules[name].kernel_size[0] > 1:  # 1x1 convs (squeeze-excitation) don't mark levels
                if last_height is not None and height < last_height and current:
                    levels.append((current, True))
                    current = []
                last_height = height
            current.append(name)
    tail = current  # convs after the last boundary (heads)

    first = next((name for kind, name, _ in events if kind == "conv"), None)
    stages: dict[str, int] = {} if first is None else {first: 0}  # in execution order
    stage = 0
    for names, container in levels:
        rest = [n for n in names if n not in stages]
        if container and rest:
            stage += 1
        for name in rest:
            stages[name] = stage if container else -1
    for name in tail:
        stages.setdefault(name, -1)
    return stages


def pushpullify(model: nn.Module, config: Design | Mapping[str, Any]) -> list[Change]:
    """Swap the stem conv and the convs of the first N stages of ``model`` for ``PushPull2d`` layers,
    in place, keeping their weights as push kernels (a pretrained model stays pretrained).

    ``config`` is a ``Design`` or its dict (``placement`` none/pp/b1/b2/all plus layer keywords).
    Only square convolutions larger than 1x1 with zero padding are eligible; a model with none where
    the placement puts push-pull is refused. Returns what changed.
    """
    design = config if isinstance(config, Design) else check_design(config)
    if design.antialias not in ("none", 0, None):
        raise UserError("pushpullify cannot add anti-aliasing to an existing model; build the model with it "
                         "(ppsearch's zoo: antialias=..., timm: aa_layer=...)")
    if design.placement == "none":
        return []
    limit = design.stages
    changes = []
    modules = dict(model.named_modules())
    for name, stage in conv_stages(model).items():
        conv = modules[name]
        if not _eligible(conv) or not (stage == 0 or limit is None or 0 < stage <= limit):
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, child,
                PushPull2d.from_conv(conv, **design.layer_kwargs()))
        changes.append(Change(name, stage, conv.in_channels, conv.out_channels, conv.kernel_size[0],
                              conv.stride[0], conv.groups))
    if not changes:  # else the model would pass for a push-pull one
        raise UserError(f"{type(model).__name__} has no convolution that placement {design.placement} can make "
                        f"push-pull (it takes square nn.Conv2d kernels larger than 1x1 with zero padding)")
    return changes
