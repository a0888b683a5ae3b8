"""ResNet for 32x32 images (He et al. 2016, Sec. 4.2): depth 6n+2, three stages of n BasicBlocks
with 16, 32, 64 channels, projection shortcuts, optional anti-aliasing (Zhang 2019)."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..config import parse_antialias
from ..errors import UserError
from ..layers import BlurPool2d


def conv3x3(in_chs: int, out_chs: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chs, out_chs, 3, stride, 1, bias=False)


def blurred_conv3x3(in_chs: int, out_chs: int, stride: int, aa: int) -> nn.Module:
    """Anti-aliased strided 3x3 conv: BlurPool(stride) then a stride-1 conv. It follows a ReLU, so
    the blur acts after the nonlinearity as Zhang prescribes."""
    if stride == 1:
        return conv3x3(in_chs, out_chs)
    return nn.Sequential(BlurPool2d(in_chs, aa, stride), conv3x3(in_chs, out_chs))


def projection(in_chs: int, out_chs: int, stride: int, aa: int) -> nn.Sequential:
    """1x1 conv + BN shortcut; anti-aliased as BlurPool(stride) -> 1x1 stride 1 -> BN."""
    layers = [BlurPool2d(in_chs, aa, stride), nn.Conv2d(in_chs, out_chs, 1, bias=False)] if aa and stride > 1 \
        else [nn.Conv2d(in_chs, out_chs, 1, stride, bias=False)]
    return nn.Sequential(*layers, nn.BatchNorm2d(out_chs))


class BasicBlock(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, aa: int = 0,
                 aa_position: str = "after_conv1") -> None:
        super().__init__()
        if aa and aa_position == "block_input":  # the seed code: blur the block's input, then conv1 at stride 1
            self.conv1 = blurred_conv3x3(in_chs, out_chs, stride, aa)
            self.conv2 = conv3x3(out_chs, out_chs)
        else:  # Zhang's BasicBlock moves the stride to the second conv: conv1 (stride 1) -> BN -> ReLU -> blur
            self.conv1 = conv3x3(in_chs, out_chs, 1 if aa else stride)
            self.conv2 = blurred_conv3x3(out_chs, out_chs, stride if aa else 1, aa)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = projection(in_chs, out_chs, stride, aa) if stride != 1 or in_chs != out_chs else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    @staticmethod
    def shape_problem(depth: int) -> str | None:
        if depth < 8 or (depth - 2) % 6:
            return f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}"
        return None

    def __init__(self, depth: int = 20, in_chans: int = 3, num_classes: int = 10, antialias: str | int = "none",
                 antialias_position: str = "after_conv1") -> None:
        super().__init__()
        problem = self.shape_problem(depth)
        if problem:
            raise UserError(problem)
        n, aa = (depth - 2) // 6, parse_antialias(antialias)
        self.stem = nn.Sequential(conv3x3(in_chans, 16), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        stages, in_chs = [], 16
        for i, width in enumerate((16, 32, 64)):
            blocks = [BasicBlock(in_chs if b == 0 else width, width, 2 if i and b == 0 else 1, aa, antialias_position)
                      for b in range(n)]
            stages.append(nn.Sequential(*blocks))
            in_chs = width
        self.stages = nn.Sequential(*stages)
        self.feature_info = [dict(num_chs=w, reduction=r, module=f"stages.{i}")
                             for i, (w, r) in enumerate(((16, 1), (32, 2), (64, 4)))]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(self.pool(x).flatten(1))
