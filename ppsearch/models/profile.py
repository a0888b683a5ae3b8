"""What a design costs: parameters, FLOPs per image, the layers it replaced and, when asked for, its
measured latency beside the plain model's."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import UserError
from ..layers import PushPull2d
from . import build_model, default_image_size, input_problem
from .latency import Latency, LatencySetup, measure_latency


@dataclasses.dataclass(frozen=True)
class ModelProfile:
    arch: str
    design: dict[str, Any]
    image_size: int
    params: int
    trainable_params: int
    flops: int  # per image, 2 per multiply-add, as torch's FlopCounterMode counts convs and matmuls
    plain_flops: int
    pushpull_layers: list[str]
    latency: Latency | None = None
    plain_latency: Latency | None = None

    def render(self) -> str:
        ratio = self.flops / self.plain_flops
        lines = [
            f"architecture     {self.arch} ({self.image_size}x{self.image_size} input)",
            f"design           {', '.join(f'{k}={v}' for k, v in self.design.items())}",
            f"parameters       {self.params:,} ({self.trainable_params:,} trainable)",
            f"FLOPs per image  {self.flops / 1e6:,.2f} M ({ratio:.2f}x the plain model's {self.plain_flops / 1e6:,.2f} M)",
        ]
        if self.latency is not None and self.plain_latency is not None:
            lines += [f"latency          {self.latency.render()}",
                      f"                 {self.latency.median_ms / self.plain_latency.median_ms:.2f}x the plain "
                      f"model's {self.plain_latency.median_ms:.3f} ms (interquartile range "
                      f"{self.plain_latency.spread_ms:.3f} ms)"]
        lines += [f"push-pull layers {len(self.pushpull_layers)}", *(f"  {name}" for name in self.pushpull_layers)]
        return "\n".join(lines)


def count_flops(model: nn.Module, image_size: int, in_chans: int) -> int:
    """FLOPs of one forward pass on one image, in eval mode."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, in_chans, image_size, image_size, device=next(model.parameters()).device))
    model.train(was_training)
    return counter.get_total_flops()


def profile_model(arch: str, *, in_chans: int = 3, num_classes: int = 10, image_size: int | None = None,
                  latency: LatencySetup | None = None, **design: Any) -> ModelProfile:
    """The costs of ``arch`` with ``design`` (and of the plain model, to compare); latency only when
    ``latency`` asks for it (it runs the models), both models measured with that one setup."""
    model = build_model(arch, in_chans=in_chans, num_classes=num_classes, **design)
    size = image_size or default_image_size(arch)
    problem = input_problem(model, arch, in_chans, size)
    if problem:
        raise UserError(problem)
    plain = build_model(arch, in_chans=in_chans, num_classes=num_classes,
                        **{k: v for k, v in design.items() if k in ("antialias", "antialias_position")})
    return ModelProfile(
        arch=arch,
        design=design,
        image_size=size,
        params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        flops=count_flops(model, size, in_chans),
        plain_flops=count_flops(plain, size, in_chans),
        pushpull_layers=[name for name, m in model.named_modules() if isinstance(m, PushPull2d)],
        **({} if latency is None else {
            "latency": measure_latency(model, in_chans=in_chans, image_size=size, setup=latency),
            "plain_latency": measure_latency(plain, in_chans=in_chans, image_size=size, setup=latency)}),
    )

