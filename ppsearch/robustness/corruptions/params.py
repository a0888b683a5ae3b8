"""Severity parameters: CIFAR-10-C tables for images up to 32x32, ImageNet-C tables above."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import torch

T = TypeVar("T")


def params_for(x: torch.Tensor, severity: int, table: tuple[Sequence[T], Sequence[T]]) -> T:
    """Pick the severity's parameter from ``(cifar, imagenet)``: CIFAR-C for images up to 32x32."""
    cifar, imagenet = table
    return (cifar if max(x.shape[-2:]) <= 32 else imagenet)[severity - 1]
