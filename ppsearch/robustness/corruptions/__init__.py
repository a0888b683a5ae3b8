"""CIFAR-10-C / ImageNet-C corruptions as batched torch code.

Each corruption is a function ``fn(x, severity, generator) -> y`` where ``x`` is a float32
(N, 3, H, W) batch in [0, 1] on any device and ``y`` is float32 in the 0..255 scale; ``corrupt``
truncates it to uint8 exactly as the reference generator's ``np.uint8(out)`` does.
The four families live in their own modules, each exporting a ``CORRUPTIONS`` dict.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import UserError
from ..names import ALL_CORRUPTIONS as ALL_CORRUPTIONS
from ..names import BENCHMARK_CORRUPTIONS as BENCHMARK_CORRUPTIONS
from ..names import EXTRA_CORRUPTIONS as EXTRA_CORRUPTIONS
from ..names import SEVERITIES as SEVERITIES
from . import blur, digital, noise, weather

CORRUPTIONS = {**noise.CORRUPTIONS, **blur.CORRUPTIONS, **weather.CORRUPTIONS, **digital.CORRUPTIONS}


def as_float_batch(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Validate a uint8 (N, H, W, 3) batch and return it as a float (N, 3, H, W) tensor in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if not isinstance(x, torch.Tensor):
        raise UserError(f"images must be a numpy array or torch tensor, got {type(images).__name__}")
    if x.dtype != torch.uint8:
        raise UserError(f"images must be uint8, got {x.dtype}")
    if x.ndim != 4 or x.shape[-1] != 3:
        raise UserError(f"images must have shape (N, H, W, 3), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise UserError("images is an empty batch")
    return x.permute(0, 3, 1, 2).float().div_(255)


def to_uint8_batch(y: torch.Tensor) -> torch.Tensor:
    return y.clamp_(0, 255).floor_().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def corrupt(
    images: np.ndarray | torch.Tensor,
    name: str,
    severity: int,
    seed: int = 0,
    *,
    frost_dir: str | Path | None = None,
) -> np.ndarray | torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (1..5) to a uint8 (N, H, W, 3) batch.

    Returns the same type, shape and device as ``images``; deterministic for a given seed.
    ``frost_dir`` holds the frost texture images (frost1.png ... frost6.jpg); without it frost
    uses ppsearch's procedural texture.
    """
    if name not in CORRUPTIONS:
        raise UserError(f"unknown corruption {name!r}; allowed: {', '.join(ALL_CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, int) or severity not in SEVERITIES:
        raise UserError(f"severity must be one of 1..5, got {severity!r}")
    x = as_float_batch(images)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    options = {"texture_dir": frost_dir} if name == "frost" else {}
    with torch.inference_mode():
        y = to_uint8_batch(CORRUPTIONS[name](x, severity, generator, **options))
    return y.cpu().numpy() if isinstance(images, np.ndarray) else y
