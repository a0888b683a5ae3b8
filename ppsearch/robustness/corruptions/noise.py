"""Noise corruptions: gaussian, shot, impulse and speckle noise.

Parameters per severity 1..5 come from make_cifar_c.py for images up to 32x32,
make_tinyimagenet_c.py up to 64x64 and make_imagenet_c.py above (``params_for``); none of them
depend on the image size otherwise.
"""
from __future__ import annotations

import functools

import torch

from .params import params_for

GAUSSIAN_SIGMA = ((0.04, 0.06, 0.08, 0.09, 0.10), (0.04, 0.08, 0.12, 0.15, 0.18), (0.08, 0.12, 0.18, 0.26, 0.38))
SHOT_RATE = ((500, 250, 100, 75, 50), (250, 100, 50, 30, 15), (60, 25, 12, 5, 3))
IMPULSE_AMOUNT = ((0.01, 0.02, 0.03, 0.05, 0.07), (0.01, 0.02, 0.05, 0.08, 0.14), (0.03, 0.06, 0.09, 0.17, 0.27))
SPECKLE_SIGMA = ((0.06, 0.10, 0.12, 0.16, 0.20), (0.15, 0.20, 0.25, 0.30, 0.35), (0.15, 0.20, 0.35, 0.45, 0.60))


def _to_255(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1) * 255


def gaussian_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Add N(0, sigma^2) to every value."""
    sigma = params_for(x, severity, GAUSSIAN_SIGMA)
    return _to_255(x + sigma * torch.randn(x.shape, generator=generator, device=x.device))


@functools.lru_cache(maxsize=16)
def _shot_alias_tables(rate: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Walker alias tables of ``shot_noise``'s output level for each of the 256 input levels.

    Output level j of input level k has probability P(floor(255 * min(c / rate, 1)) = j),
    c ~ Poisson(k / 255 * rate) (rate and c / rate in float32, as ``torch.poisson`` would
    be used). Returns (256 * 256,) flat tables, row k, column j: the probability of keeping
    outcome j when column j is drawn, and the outcome taken otherwise.
    """
    lam = (torch.arange(256) / 255 * rate).double()[:, None]  # float32 products, as x * rate
    counts = torch.arange(rate, dtype=torch.float64)
    pmf = torch.exp(counts * lam.log() - lam - torch.lgamma(counts + 1)).nan_to_num_(0)
    pmf[0, 0] = 1.0  # level 0: Poisson(0) is always 0
    out = ((torch.arange(rate) / rate).clamp(0, 1) * 255).floor().long()
    probs = torch.zeros(256, 256, dtype=torch.float64).index_add_(1, out, pmf)
    probs[:, 255] += (1 - pmf.sum(1)).clamp(min=0)  # counts >= rate saturate at 255
    # Walker: repeatedly fill the emptiest column up to 1/256 from the fullest one
    scaled = probs / probs.sum(1, keepdim=True) * 256
    keep = torch.ones_like(scaled)
    alias = torch.arange(256).repeat(256, 1)
    open_ = torch.ones_like(scaled, dtype=torch.bool)
    rows = torch.arange(256)
    for _ in range(255):
        low = scaled.masked_fill(~open_, float("inf")).argmin(1)
        high = scaled.masked_fill(~open_, -float("inf")).argmax(1)
        keep[rows, low] = scaled[rows, low]
        alias[rows, low] = high
        scaled[rows, high] -= 1 - scaled[rows, low]
        open_[rows, low] = False
    return keep.float().flatten().to(device), alias.float().flatten().to(device)


def shot_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Replace each value by Poisson(rate * x) / rate (photon counting noise).

    Samples the truncated 0..255 output of each of the 256 input levels directly with the
    alias method, one uniform per value (exact up to the uniform's 2**-24 resolution):
    much faster than ``torch.poisson`` on the CPU.
    """
    rate = params_for(x, severity, SHOT_RATE)
    u = torch.rand(x.shape, generator=generator, device=x.device).mul_(256)
    column = u.floor()
    index = (x * 255).round_().mul_(256).add_(column).int().flatten()
    keep, alias = (t.index_select(0, index).view_as(u) for t in _shot_alias_tables(rate, x.device))
    return torch.where(u.sub_(column) < keep, column, alias)


def impulse_noise(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Salt and pepper as skimage's ``random_noise(mode='s&p')``: each value (per channel)
    is replaced with probability ``amount``, by 0 or 1 with equal chance."""
    amount = params_for(x, severity, IMPULSE_AMOUNT)
    u = torch.rand(x.shape, generator=generator, device=x.device)
    # u below amount / 2: pepper (0); from there up to amount: salt (1)
    return torch.where(u < amount, (u >= amount / 2).to(x.dtype), x).mul_(255)


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
