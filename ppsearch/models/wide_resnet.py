"""Wide ResNet-d-k for 32x32 images (Zagoruyko & Komodakis 2016): pre-activation blocks,
(d-4)/6 per stage, widths 16k, 32k, 64k; optional anti-aliasing (Zhang 2019)."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..config import parse_antialias
from ..errors import UserError
from ..layers import BlurPool2d
from .resnet_cifar import blurred_conv3x3, conv3x3


class WideBlock(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, aa: int = 0,
                 aa_position: str = "after_conv1") -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chs)
        if aa and aa_position == "block_input":  # blur the (pre-activated) block input, then conv1 at stride 1
            self.conv1 = blurred_conv3x3(in_chs, out_chs, stride, aa)
            self.conv2 = conv3x3(out_chs, out_chs)
        else:
            self.conv1 = conv3x3(in_chs, out_chs, 1 if aa else stride)
            self.conv2 = blurred_conv3x3(out_chs, out_chs, stride if aa else 1, aa)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if stride != 1 or in_chs != out_chs:
            layers = [BlurPool2d(in_chs, aa, stride), nn.Conv2d(in_chs, out_chs, 1, bias=False)] if aa and stride > 1 \
                else [nn.Conv2d(in_chs, out_chs, 1, stride, bias=False)]
            self.shortcut = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    @staticmethod
    def shape_problem(depth: int, widen: int) -> str | None:
        if depth < 10 or (depth - 4) % 6 or widen < 1:
            return f"WideResNet depth must be 6n+4 (16, 22, 28, 40) and width >= 1, got {depth}-{widen}"
        return None

    def __init__(self, depth: int = 28, widen: int = 10, in_chans: int = 3, num_classes: int = 10,
                 antialias: str | int = "none", antialias_position: str = "after_conv1") -> None:
        super().__init__()
        problem = self.shape_problem(depth, widen)
        if problem:
            raise UserError(problem)
        n, aa = (depth - 4) // 6, parse_antialias(antialias)
        self.stem = conv3x3(in_chans, 16)
        widths, stages, in_chs = (16 * widen, 32 * widen, 64 * widen), [], 16
        for i, width in enumerate(widths):
            stages.append(nn.Sequential(*[WideBlock(in_chs if b == 0 else width, width, 2 if i and b == 0 else 1, aa,
                                                    antialias_position) for b in range(n)]))
            in_chs = width
        self.stages = nn.Sequential(*stages)
        self.feature_info = [dict(num_chs=w, reduction=2 ** i, module=f"stages.{i}") for i, w in enumerate(widths)]
        self.head = nn.Sequential(nn.BatchNorm2d(in_chs), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(in_chs, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.stages(self.stem(x))))
