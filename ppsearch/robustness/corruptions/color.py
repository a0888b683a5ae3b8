"""RGB <-> HSV conversions for (N, 3, H, W) tensors, reproducing ``skimage.color`` exactly.

The reference generator edits hue/saturation/value with skimage, so its conventions matter for
pixel-level fidelity: on ties for the maximum channel, blue wins over green over red, grey pixels
get hue 0, and ``hsv2rgb`` picks its sector from ``floor(6 * h) % 6``.
"""
from __future__ import annotations

import torch

# For sector i of hsv2rgb, which of (v, p, q, t) goes to (r, g, b).
_SECTOR_SOURCES = torch.tensor([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])


def rgb2hsv(rgb: torch.Tensor) -> torch.Tensor:
    """Convert an (N, 3, H, W) RGB batch in [0, 1] to HSV, all channels in [0, 1]."""
    r, g, b = rgb.unbind(1)
    v = rgb.amax(1)
    delta = v - rgb.amin(1)
    grey = delta == 0
    safe_delta = torch.where(grey, torch.ones_like(delta), delta)
    s = torch.where(grey, torch.zeros_like(delta), delta / torch.where(grey, torch.ones_like(v), v))
    # Later assignments win in skimage, so blue-is-max overrides green overrides red.
    h = torch.where(
        b == v,
        4.0 + (r - g) / safe_delta,
        torch.where(g == v, 2.0 + (b - r) / safe_delta, (g - b) / safe_delta),
    )
    h = torch.where(grey, torch.zeros_like(h), torch.remainder(h / 6.0, 1.0))
    return torch.stack((h, s, v), 1)


def hsv2rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Convert an (N, 3, H, W) HSV batch in [0, 1] back to RGB."""
    h, s, v = hsv.unbind(1)
    sector = torch.floor(h * 6)
    f = h * 6 - sector
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    candidates = torch.stack((v, p, q, t), 1)
    sources = _SECTOR_SOURCES.to(hsv.device)[sector.long() % 6].permute(0, 3, 1, 2)
    return candidates.gather(1, sources)
