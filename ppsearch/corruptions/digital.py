"""Digital corruptions: brightness, contrast, saturate, elastic transform, pixelate, JPEG.

Parameters per severity 1..5 come from make_cifar_c.py for images up to 32x32 and from
make_imagenet_c.py for larger ones (see ``params_for``). Elastic transform's parameters are
fractions of the image size: CIFAR-C's times ``min(H, W)`` (32 in the reference), ImageNet-C's
times ``244 / 224 * min(H, W)`` (the reference's 244 for its 224-pixel images).
"""
from __future__ import annotations

import functools
import math
import warnings
from typing import Callable

import torch
import torch.nn.functional as F
from torchvision.io import decode_jpeg, encode_jpeg

from .color import hsv2rgb, rgb2hsv
from .params import params_for

BRIGHTNESS_SHIFT = ((0.05, 0.1, 0.15, 0.2, 0.3), (0.1, 0.2, 0.3, 0.4, 0.5))
CONTRAST_FACTOR = ((0.75, 0.5, 0.4, 0.3, 0.15), (0.4, 0.3, 0.2, 0.1, 0.05))
SATURATE_SCALE_SHIFT = (
    ((0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2)),
    ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)),
)
PIXELATE_FACTOR = ((0.95, 0.9, 0.85, 0.75, 0.65), (0.6, 0.5, 0.4, 0.3, 0.25))
JPEG_QUALITY = ((80, 65, 58, 50, 40), (25, 18, 15, 10, 7))
# (alpha, sigma, affine) as fractions of the image size.
ELASTIC_ALPHA_SIGMA_AFFINE = (
    ((0.0, 0.0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)),
    ((2.0, 0.7, 0.1), (2.0, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02)),
)


def _to_255(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1) * 255


def _grey_levels(x: torch.Tensor) -> torch.Tensor:
    """The uint8 values the [0, 1] batch was made from, as floats."""
    return (x * 255).round()


def _edit_hsv(
    x: torch.Tensor, channel: int, edit: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Edit one HSV channel (clipped to [0, 1]) and return 0..255 RGB, already truncated.

    Works in float64 from the exact grey levels, like the reference's numpy code: the result
    then truncates to the reference's uint8 values bit for bit.
    """
    hsv = rgb2hsv(_grey_levels(x).double() / 255)
    hsv[:, channel] = edit(hsv[:, channel]).clamp(0, 1)
    return _to_255(hsv2rgb(hsv)).floor().float()


def brightness(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Add a constant to the HSV value channel."""
    shift = params_for(x, severity, BRIGHTNESS_SHIFT)
    return _edit_hsv(x, 2, lambda v: v + shift)


def saturate(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Scale and shift the HSV saturation channel."""
    scale, shift = params_for(x, severity, SATURATE_SCALE_SHIFT)
    return _edit_hsv(x, 1, lambda s: s * scale + shift)


def contrast(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Shrink each channel towards its per-image mean."""
    factor = params_for(x, severity, CONTRAST_FACTOR)
    means = x.mean((2, 3), keepdim=True)
    return _to_255((x - means) * factor + means)


# PIL's fixed-point resampling: 22 fractional bits, results rounded half up and clipped to uint8.
_PIL_PRECISION_BITS = 22


@functools.lru_cache(maxsize=None)
def _pil_box_weights(in_size: int, out_size: int) -> torch.Tensor:
    """PIL's BOX resize along one axis as an (out, in) float64 matrix of fixed-point integers.

    PIL samples the box filter at input pixel centres (it is not an area average), normalises
    each row and rounds the weights to integers; float64 keeps the products exact.
    """
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 0.5 * filter_scale
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    for out in range(out_size):
        center = (out + 0.5) * scale
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), in_size)
        inside = [-0.5 < (i - center + 0.5) * (1.0 / filter_scale) <= 0.5 for i in range(lo, hi)]
        weight = math.floor(0.5 + 1.0 / sum(inside) * (1 << _PIL_PRECISION_BITS))
        weights[out, lo:hi] = torch.tensor(inside, dtype=torch.float64) * weight
    return weights


def _pil_round(acc: torch.Tensor) -> torch.Tensor:
    """PIL's fixed-point to uint8 step: round half up, clip."""
    half = 1 << (_PIL_PRECISION_BITS - 1)
    return torch.floor((acc + half) / (1 << _PIL_PRECISION_BITS)).clamp_(0, 255)


def _pil_box_resize(levels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """PIL ``resize(..., BOX)`` of float64 grey levels: horizontal pass, uint8, vertical pass."""
    w_weights = _pil_box_weights(levels.shape[-1], width).to(levels.device)
    h_weights = _pil_box_weights(levels.shape[-2], height).to(levels.device)
    return _pil_round(h_weights @ _pil_round(levels @ w_weights.T))


def pixelate(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """PIL BOX downscale by a factor, then BOX upscale back to the original size."""
    factor = params_for(x, severity, PIXELATE_FACTOR)
    h, w = x.shape[-2:]
    levels = _grey_levels(x).double()
    small = _pil_box_resize(levels, int(h * factor), int(w * factor))
    return _pil_box_resize(small, h, w).float()


def jpeg_compression(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Encode and decode as JPEG at the severity's quality (libjpeg defaults, 4:2:0 chroma).

    Runs torchvision's libjpeg codec on the CPU, which reproduces PIL's output exactly; CUDA
    batches are copied there and back, as nvJPEG's output has not been checked against PIL.
    """
    quality = params_for(x, severity, JPEG_QUALITY)
    images = list(_grey_levels(x).to("cpu", torch.uint8))
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image codecs in favour of TorchCodec.
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = decode_jpeg(encode_jpeg(images, quality=quality))
    return torch.stack(decoded).to(x.device, torch.float32)


def _gaussian_kernel1d(sigma: float, device: torch.device) -> torch.Tensor:
    """scipy.ndimage's Gaussian taps with ``truncate=3``."""
    radius = int(3 * sigma + 0.5)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, device=device) / sigma) ** 2)
    return taps / taps.sum()


def _symmetric_index(size: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices padding an axis by ``pad`` in scipy's 'reflect' mode (edge repeated), any pad."""
    index = torch.arange(-pad, size + pad, device=device).remainder(2 * size)
    return torch.where(index >= size, 2 * size - 1 - index, index)


def _gaussian_blur_matrix(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    """(size, size) matrix applying the 1-D Gaussian along an axis, borders folded in."""
    kernel = _gaussian_kernel1d(sigma, device)
    taps = kernel.numel()
    padded = _symmetric_index(size, taps // 2, device)
    rows = torch.arange(size, device=device)[:, None].expand(size, taps)
    cols = padded[rows + torch.arange(taps, device=device)]
    matrix = torch.zeros(size, size, device=device)
    return matrix.index_put_((rows, cols), kernel.expand(size, taps), accumulate=True)


def _gaussian_blur(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with scipy 'reflect' borders, truncate=3."""
    h, w = field.shape[-2:]
    rows = _gaussian_blur_matrix(h, sigma, field.device)
    return rows @ field @ _gaussian_blur_matrix(w, sigma, field.device).T


def _pixel_grid(n: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    """(N, H, W, 2) pixel coordinates (x, y) of every output pixel."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack((xs, ys), -1).expand(n, h, w, 2)


def _sample(x: torch.Tensor, coords: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Bilinear sampling at pixel coordinates with mirrored borders.

    align_corners=True mirrors about the edge pixel centres (OpenCV REFLECT_101);
    False mirrors about the image edges (scipy 'reflect').
    """
    size = torch.tensor([x.shape[-1], x.shape[-2]], device=x.device, dtype=coords.dtype)
    grid = 2 * coords / (size - 1) - 1 if align_corners else (2 * coords + 1) / size - 1
    return F.grid_sample(
        x, grid, mode="bilinear", padding_mode="reflection", align_corners=align_corners
    )


def _random_affine(x: torch.Tensor, max_shift: float, generator: torch.Generator) -> torch.Tensor:
    """Warp by the affine map that moves three fixed points by U(-max_shift, max_shift) each."""
    n, _, h, w = x.shape
    cx, cy, half = w // 2, h // 2, min(h, w) // 3
    src = torch.tensor(
        [[cx + half, cy + half], [cx + half, cy - half], [cx - half, cy - half]],
        dtype=torch.float32,
        device=x.device,
    ).expand(n, 3, 2)
    dst = src + (2 * torch.rand((n, 3, 2), generator=generator, device=x.device) - 1) * max_shift
    # Solve for the inverse map (dst -> src) directly: it tells where each output pixel samples.
    inverse = torch.linalg.solve(F.pad(dst, (0, 1), value=1.0), src)  # (N, 3, 2)
    coords = F.pad(_pixel_grid(n, h, w, x.device), (0, 1), value=1.0).flatten(1, 2) @ inverse
    return _sample(x, coords.view(n, h, w, 2), align_corners=True)


def elastic_transform(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Random affine warp, then a smooth random displacement field of strength alpha.

    The displacement is U(-1, 1) noise blurred with a Gaussian of std sigma, times alpha, per
    axis; both warps interpolate bilinearly with mirrored borders as the reference does.
    """
    n, _, h, w = x.shape
    scale = min(h, w) * (1.0 if max(h, w) <= 32 else 244 / 224)
    alpha, sigma, affine = (scale * k for k in params_for(x, severity, ELASTIC_ALPHA_SIGMA_AFFINE))
    x = _random_affine(x, affine, generator)
    if alpha > 0:
        noise = 2 * torch.rand((n, 2, h, w), generator=generator, device=x.device) - 1
        displacement = alpha * _gaussian_blur(noise, sigma)
        coords = _pixel_grid(n, h, w, x.device) + displacement.permute(0, 2, 3, 1)
        x = _sample(x, coords, align_corners=False)
    return _to_255(x)


CORRUPTIONS = {
    "brightness": brightness,
    "contrast": contrast,
    "saturate": saturate,
    "elastic_transform": elastic_transform,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
}
