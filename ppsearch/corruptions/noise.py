"""Noise corruptions: gaussian, shot, impulse and speckle noise.

Parameters per severity 1..5 come from make_cifar_c.py for images up to 32x32 and from
make_imagenet_c.py for larger ones; none of them depend on the image size otherwise.
"""
from __future__ import annotations

import torch

from .params import params_for

GAUSSIAN_SIGMA = ((0.04, 0.06, 0.08, 0.09, 0.10), (0.08, 0.12, 0.18, 0.26, 0.38))
SHOT_RATE = ((500, 250, 100, 75, 50), (60, 25, 12, 5, 3))
IMPULSE_AMOUNT = ((0.01, 0.02, 0.03, 0.05, 0.07), (0.03, 0.06, 0.09, 0.17, 0.27))
SPECKLE_SIGMA = ((0.06, 0.10, 0.12, 0.16, 0.20), (0.15, 0.20, 0.35, 0.45, 0.60))


def _to_255(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1) * 255


def gaussian_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Add N(0, sigma^2) to every value."""
    sigma = params_for(x, severity, GAUSSIAN_SIGMA)
    return _to_255(x + sigma * torch.randn(x.shape, generator=generator, device=x.device))


def shot_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Replace each value by Poisson(rate * x) / rate (photon counting noise)."""
    rate = params_for(x, severity, SHOT_RATE)
    return _to_255(torch.poisson(x * rate, generator=generator) / rate)


def impulse_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Salt and pepper as skimage's ``random_noise(mode='s&p')``: each value (per channel)
    is replaced with probability ``amount``, by 0 or 1 with equal chance."""
    amount = params_for(x, severity, IMPULSE_AMOUNT)
    u = torch.rand(x.shape, generator=generator, device=x.device)
    x = torch.where(u < amount / 2, torch.zeros_like(x), x)
    return _to_255(torch.where((u >= amount / 2) & (u < amount), torch.ones_like(x), x))


def speckle_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Multiplicative noise: x + x * N(0, sigma^2)."""
    sigma = params_for(x, severity, SPECKLE_SIGMA)
    return _to_255(x + x * sigma * torch.randn(x.shape, generator=generator, device=x.device))


CORRUPTIONS = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
}
