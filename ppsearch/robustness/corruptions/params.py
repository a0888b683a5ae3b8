"""Severity parameters: the reference generator's table for the image size, CIFAR-10-C's
(``make_cifar_c.py``) up to 32x32, Tiny-ImageNet-C's (``make_tinyimagenet_c.py``) up to 64x64,
ImageNet-C's (``make_imagenet_c.py``) above. Every table is a triple in that order."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import torch

T = TypeVar("T")

TABLES = ((32, "CIFAR-10-C"), (64, "Tiny-ImageNet-C"), (None, "ImageNet-C"))  # (largest side, generator)


def table_index(height: int, width: int) -> int:
    """Which of :data:`TABLES` applies to images of this size."""
    side = max(height, width)
    return next(i for i, (largest, _) in enumerate(TABLES) if largest is None or side <= largest)


def table_name(height: int, width: int) -> str:
    return TABLES[table_index(height, width)][1]


def params_for(x: torch.Tensor, severity: int, table: tuple[Sequence[T], Sequence[T], Sequence[T]]) -> T:
    """The severity's parameter from ``(cifar, tiny_imagenet, imagenet)`` for the size of ``x``."""
    return table[table_index(*x.shape[-2:])][severity - 1]
