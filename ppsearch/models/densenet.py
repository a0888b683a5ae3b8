"""DenseNet-BC-L-k for 32x32 images (Huang et al. 2017): three dense blocks of (L-4)/6 bottleneck
layers (BN-ReLU-1x1 to 4k, BN-ReLU-3x3 to k), transitions with compression 0.5; optional
anti-aliasing replaces the transitions' average pooling by BlurPool (Zhang 2019).

As the seed paper's code builds it (nicstrisc/Push-Pull-CNN-layer, densenet/densenetcifar.py): a
24-channel 3x3 stem for every growth rate, convolutions initialised normal with std sqrt(2 / fan_out),
batch norms at 1 and 0, the classifier's bias at 0 (DenseNet-BC-100-24: 2,936,650 parameters)."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..config import parse_antialias
from ..errors import UserError
from ..layers import BlurPool2d


class DenseLayer(nn.Module):
    def __init__(self, in_chs: int, growth: int) -> None:
        super().__init__()
        self.bottleneck = nn.Sequential(nn.BatchNorm2d(in_chs), nn.ReLU(inplace=True),
                                        nn.Conv2d(in_chs, 4 * growth, 1, bias=False))
        self.bn = nn.BatchNorm2d(4 * growth)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(self.relu(self.bn(self.bottleneck(x))))], 1)


def transition(in_chs: int, out_chs: int, aa: int) -> nn.Sequential:
    pool = BlurPool2d(out_chs, aa, 2) if aa else nn.AvgPool2d(2)
    return nn.Sequential(nn.BatchNorm2d(in_chs), nn.ReLU(inplace=True), nn.Conv2d(in_chs, out_chs, 1, bias=False), pool)


STEM_CHANNELS = 24


class DenseNetBC(nn.Module):
    @staticmethod
    def shape_problem(depth: int, growth: int) -> str | None:
        if depth < 10 or (depth - 4) % 6 or growth < 1:
            return f"DenseNet-BC depth must be 6n+4 (40, 100, 190), got {depth}-{growth}"
        return None

    def __init__(self, depth: int = 100, growth: int = 12, in_chans: int = 3, num_classes: int = 10,
                 antialias: str | int = "none", antialias_position: str = "after_conv1") -> None:
        # dense blocks have no strided convs: the blur sits in the transitions whatever the position
        super().__init__()
        problem = self.shape_problem(depth, growth)
        if problem:
            raise UserError(problem)
        n, aa = (depth - 4) // 6, parse_antialias(antialias)
        chs = STEM_CHANNELS
        self.stem = nn.Conv2d(in_chans, chs, 3, 1, 1, bias=False)
        stages = []
        self.feature_info = []
        for i in range(3):
            layers = []
            for _ in range(n):
                layers.append(DenseLayer(chs, growth))
                chs += growth
            stages.append(nn.Sequential(*layers))
            self.feature_info.append(dict(num_chs=chs, reduction=2 ** i, module=f"stages.{2 * i}"))
            if i < 2:
                stages.append(transition(chs, chs // 2, aa))
                chs //= 2
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.BatchNorm2d(chs), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(chs, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.stages(self.stem(x))))
