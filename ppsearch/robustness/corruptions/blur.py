"""Blur corruptions (defocus, glass, motion, zoom, gaussian) as batched torch code.

Each follows the recipe of the reference generator (hendrycks/robustness, ``make_cifar_c.py`` for
images up to 32x32, ``make_tinyimagenet_c.py`` up to 64x64, ``make_imagenet_c.py`` above):

- defocus_blur: disk kernel anti-aliased by a 3x3 (5x5 for radius > 8) Gaussian, OpenCV
  ``filter2D`` with its default REFLECT_101 border.
- gaussian_blur: ``skimage.filters.gaussian`` (truncate 4, border 'nearest').
- glass_blur: Gaussian, truncation to uint8, the reference's sequential local pixel copy,
  Gaussian again.
- motion_blur: ImageMagick 6 ``MotionBlurImage`` along an angle drawn from U(-45, 45).
- zoom_blur: mean of the image and its ``clipped_zoom`` (SciPy ``zoom``, order 1) per factor.

Non-square images are handled axis by axis where the reference assumes a square image.
"""
from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from .params import params_for

# (CIFAR-10-C, Tiny-ImageNet-C, ImageNet-C) tables per corruption, indexed by severity - 1 (see params_for)
# (disk radius, alias-filter sigma)
DEFOCUS = (((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
           ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)),
           ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)))
GAUSSIAN_SIGMA = ((0.4, 0.6, 0.7, 0.8, 1.0), (0.5, 0.75, 1.0, 1.25, 1.5), (1.0, 2.0, 3.0, 4.0, 6.0))
# (sigma, max pixel offset, iterations)
GLASS = (((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
         ((0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)),
         ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)))
# ImageMagick (radius, sigma)
MOTION = (((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
          ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)),
          ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)))
# zoom factors, built with np.arange as the reference does (its float steps decide the crops);
# Tiny-ImageNet-C uses CIFAR-10-C's
_SMALL_ZOOM = tuple(tuple(np.arange(1, stop, 0.01).tolist()) for stop in (1.06, 1.11, 1.16, 1.21, 1.26))
ZOOM = (
    _SMALL_ZOOM,
    _SMALL_ZOOM,
    tuple(tuple(np.arange(1, stop, step).tolist())
          for stop, step in ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03))),
)


def _border_index(index: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Map out-of-range indices inside ``[0, size)``: 'replicate' (edge) or 'reflect' (REFLECT_101)."""
    if mode == "replicate":
        return index.clamp(0, size - 1)
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    index = index.remainder(period)
    return torch.where(index < size, index, period - index)


def filter_matrix(size: int, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """(size, size) matrix M with ``M @ v`` = ``v`` correlated with the centred 1-D ``kernel``."""
    r = kernel.numel() // 2
    out = torch.arange(size)[:, None].expand(-1, kernel.numel())
    src = _border_index(out + torch.arange(-r, r + 1)[None, :], size, mode)
    m = torch.zeros(size, size, dtype=torch.float64)
    m.index_put_((out.reshape(-1), src.reshape(-1)), kernel.double().repeat(size), accumulate=True)
    return m


class SeparableSum:
    """The linear image operator ``x -> sum_k L_k @ x @ R_k.T`` on (..., H, W) batches.

    Small filters, crops and resizes are all of this form; matrix products beat convolution
    on CPU by far for small images. With many terms on a small image the sum is folded into
    one sparse (H*W, H*W) matrix instead (a pixel only mixes with its neighbours), which is
    cheaper than the many small products.
    """

    SPARSE_MAX_PIXELS = 64 * 64  # bounds the dense Kronecker products built on the way

    def __init__(self, terms: Sequence[tuple[torch.Tensor, torch.Tensor]]):
        h, w = terms[0][0].shape[0], terms[0][1].shape[0]
        self.shape = (h, w)
        self.terms = [(left.float(), right.T.float()) for left, right in terms]
        self.sparse = None
        if h * w <= self.SPARSE_MAX_PIXELS and len(terms) > 4:
            dense = sum(torch.kron(left, right) for left, right in terms).float()
            with warnings.catch_warnings():  # torch flags sparse CSR as beta
                warnings.simplefilter("ignore", UserWarning)
                self.sparse = dense.to_sparse_csr()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.shape:
            raise ValueError(f"operator built for {self.shape} images, got {tuple(x.shape[-2:])}")
        if self.sparse is not None:
            flat_t = x.reshape(-1, self.shape[0] * self.shape[1]).T.contiguous()
            return (self.sparse.to(device=x.device, dtype=x.dtype) @ flat_t).T.reshape(x.shape)
        out = None
        for left, right_t in self.terms:
            term = left.to(x) @ x @ right_t.to(x)
            out = term if out is None else out.add_(term)
        return out


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """SciPy's ``gaussian_filter1d`` weights: radius ``int(truncate * sigma + 0.5)``, sum 1."""
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


@functools.lru_cache(maxsize=64)
def _separable_operator(h: int, w: int, vertical: tuple[float, ...], horizontal: tuple[float, ...],
                        mode: str) -> SeparableSum:
    return SeparableSum([(filter_matrix(h, torch.tensor(vertical), mode),
                          filter_matrix(w, torch.tensor(horizontal), mode))])


def separable_filter(x: torch.Tensor, vertical: Sequence[float], horizontal: Sequence[float],
                     mode: str) -> torch.Tensor:
    """Correlate every channel of (N, C, H, W) with centred 1-D taps along H then W.

    ``mode``: 'replicate' (edge pixels repeat) or 'reflect' (OpenCV's REFLECT_101).
    """
    return _separable_operator(x.shape[-2], x.shape[-1], tuple(vertical), tuple(horizontal), mode)(x)


def gaussian_filter(x: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """``skimage.filters.gaussian`` over H and W of (N, C, H, W): border 'nearest' (replicate)."""
    k = gaussian_kernel1d(sigma, truncate).tolist()
    return separable_filter(x, k, k, "replicate")


@functools.lru_cache(maxsize=64)
def _filter2d_operator(h: int, w: int, kernel: tuple[tuple[float, ...], ...], mode: str) -> SeparableSum:
    # a 2-D kernel is a sum of separable ones (its SVD); the border rule applies per axis
    u, s, vt = torch.linalg.svd(torch.tensor(kernel, dtype=torch.float64))
    rank = int((s > s[0] * 1e-12).sum())
    return SeparableSum([(filter_matrix(h, u[:, i] * s[i], mode), filter_matrix(w, vt[i], mode))
                         for i in range(rank)])


def filter2d(x: torch.Tensor, kernel: torch.Tensor, mode: str = "reflect") -> torch.Tensor:
    """OpenCV ``filter2D`` (correlation, odd square kernel) of every channel of (N, C, H, W).

    ``mode`` 'reflect' is OpenCV's default REFLECT_101 border, 'replicate' its REPLICATE.
    """
    key = tuple(map(tuple, kernel.double().tolist()))
    return _filter2d_operator(x.shape[-2], x.shape[-1], key, mode)(x)


def _disk_kernel(radius: float, alias_sigma: float) -> torch.Tensor:
    """The reference ``disk``: normalised aliased disk smoothed by OpenCV's GaussianBlur."""
    if radius <= 8:
        half, ksize = 8, 3
    else:
        half, ksize = int(radius), 5
    t = torch.arange(-half, half + 1, dtype=torch.float64)
    disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius**2).double()
    disk /= disk.sum()
    g = torch.exp(-0.5 * (torch.arange(ksize, dtype=torch.float64) - ksize // 2) ** 2 / alias_sigma**2)
    smooth = filter_matrix(2 * half + 1, g / g.sum(), "reflect")
    kernel = smooth @ disk @ smooth.T
    # drop the all-zero border: fewer terms, same result
    r = half - int((kernel.abs().sum(0) > 0).nonzero()[0, 0])
    return kernel[half - r:half + r + 1, half - r:half + r + 1]


def defocus_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    radius, alias_sigma = params_for(x, severity, DEFOCUS)
    return filter2d(x, _disk_kernel(radius, alias_sigma)).clamp_(0, 1) * 255


def gaussian_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    sigma = params_for(x, severity, GAUSSIAN_SIGMA)
    return gaussian_filter(x, sigma).clamp_(0, 1) * 255


def _glass_sources(n: int, h: int, w: int, delta: int, generator: torch.Generator,
                   device: torch.device) -> torch.Tensor:
    """Flat source index of every pixel after one pass of the reference's pixel-copy loop.

    The loop visits rows then columns from ``size - delta`` down to ``delta + 1`` and copies
    ``x[h + dy, w + dx]`` into ``x[h, w]`` (dx, dy uniform in [-delta, delta - 1]); its "swap"
    of numpy views is a copy. A pixel read after it was itself overwritten passes on its own
    source, so sources are chased (pointer doubling) back to pixels not yet written when read.
    With delta == 1 every read precedes the write: a plain gather.
    """
    rows = torch.arange(h - delta, delta, -1, device=device)
    cols = torch.arange(w - delta, delta, -1, device=device)
    dst = (rows[:, None] * w + cols[None, :]).flatten()
    # one draw per pixel picks the (dy, dx) pair; both uniform and independent as in the reference
    d = torch.arange(-delta, delta, device=device)
    shifts = (d[:, None] * w + d[None, :]).flatten()
    src = dst + shifts[torch.randint(shifts.numel(), (n, dst.numel()), generator=generator, device=device)]
    source = torch.arange(h * w, device=device).repeat(n, 1)
    source[:, dst] = src
    if delta == 1:  # sources lie up-left, visited later: nothing to chase
        return source
    visit = torch.full((h * w,), h * w, device=device)  # pixels never visited are never written
    visit[dst] = torch.arange(dst.numel(), device=device)
    chase = torch.zeros_like(source, dtype=torch.bool)
    chase[:, dst] = visit[src] < visit[dst]
    while chase.any():
        source, chase = torch.where(chase, source.gather(1, source), source), chase & chase.gather(1, source)
    return source


def glass_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    sigma, delta, iterations = params_for(x, severity, GLASS)
    n, c, h, w = x.shape
    y = (gaussian_filter(x, sigma) * 255).floor_().flatten(2)  # the reference's np.uint8
    for _ in range(iterations):
        source = _glass_sources(n, h, w, delta, generator, x.device)
        y = y.gather(2, source[:, None].expand(-1, c, -1))
    return gaussian_filter(y.view(n, c, h, w) / 255, sigma).clamp_(0, 1) * 255


def line_blur(x: torch.Tensor, radius: float, sigma: float, angle: torch.Tensor) -> torch.Tensor:
    """ImageMagick 6 ``MotionBlurImage(radius, sigma, angle)`` of a float (N, C, H, W) batch.

    One-sided blur: ``2 * ceil(radius) + 1`` taps with weights ``exp(-i^2 / (2 sigma^2))``
    (normalised), tap ``i`` reading the pixel ``(ceil(i cos a - 0.5), ceil(i sin a - 0.5))``
    away in (x, y); reads outside the image take the nearest edge pixel (ImageMagick's default
    'edge' virtual pixels). ``angle``: (N,) degrees, one per image. The result is not
    quantised; see ``imagemagick_quantize`` for what ImageMagick then stores.
    """
    n, c, h, w = x.shape
    if radius <= 0 or sigma <= 0:
        raise ValueError(f"line_blur needs radius > 0 and sigma > 0, got radius={radius}, sigma={sigma}")
    if angle.shape != (n,):
        raise ValueError(f"angle must have shape ({n},), got {tuple(angle.shape)}")
    taps = torch.arange(2 * math.ceil(radius) + 1, dtype=torch.float64)
    weights = torch.exp(-(taps**2) / (2 * sigma**2))
    weights /= weights.sum()
    # taps whose weights together stay below float32 resolution change nothing: skip them
    tail = weights.flip(0).cumsum(0).flip(0)
    taps = taps[tail >= 1e-8].to(x.device)
    rad = torch.deg2rad(angle.to(device=x.device, dtype=torch.float64))
    dx = torch.ceil(taps[:, None] * torch.cos(rad) - 0.5).int()  # (taps, N)
    dy = torch.ceil(taps[:, None] * torch.sin(rad) - 0.5).int()
    rows = torch.arange(h, device=x.device, dtype=torch.int32)
    cols = torch.arange(w, device=x.device, dtype=torch.int32)
    first = torch.arange(n, device=x.device, dtype=torch.int32)[:, None, None] * (h * w)
    # channels-last rows of C values: one index per pixel, fetched from nearby memory
    pixels = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    if c == 1:
        pixels = pixels.view(-1)  # 1-D index_select is ~3x faster than on rows of one value
    out = torch.zeros_like(pixels)
    for k, ox, oy in zip(weights.tolist(), dx, dy):
        r = (rows[None, :] + oy[:, None]).clamp_(0, h - 1)
        q = (cols[None, :] + ox[:, None]).clamp_(0, w - 1)
        index = (first + r[:, :, None] * w + q[:, None, :]).view(-1)
        out.add_(pixels.index_select(0, index), alpha=k)
    return out.view(n, h, w, c).permute(0, 3, 1, 2)


def imagemagick_quantize(y: torch.Tensor) -> torch.Tensor:
    """What the reference gets back from ImageMagick for float ``y`` in [0, 1], on the 0..255 scale.

    ImageMagick (Q16) rounds to 16-bit quanta and the 8-bit PNG it writes truncates
    ``q / 257``; this reproduces the reference outputs exactly on 99.96% of pixels.
    """
    return torch.floor(torch.round(y.clamp(0, 1) * 65535) / 257)


def motion_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    radius, sigma = params_for(x, severity, MOTION)
    angle = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=torch.float64) * 90 - 45
    return imagemagick_quantize(line_blur(x, radius, sigma, angle))


def _zoom_matrix(size: int, factor: float) -> torch.Tensor:
    """(size, size) matrix applying the reference ``clipped_zoom`` along one axis.

    ``clipped_zoom`` takes the centre crop of ``ceil(size / factor)`` pixels, resizes it to
    ``round(crop * factor)`` with ``scipy.ndimage.zoom(order=1)`` (output i samples input
    ``i * (crop - 1) / (out - 1)``, linear interpolation) and keeps the centre ``size`` pixels.
    """
    crop = math.ceil(size / factor)
    top = (size - crop) // 2
    out = int(round(crop * factor))
    trim = (out - size) // 2
    coord = torch.arange(trim, trim + size, dtype=torch.float64)
    if out > 1:
        coord *= (crop - 1) / (out - 1)
    lo = coord.floor().long().clamp_(max=crop - 1)
    frac = coord - lo
    hi = (lo + 1).clamp_(max=crop - 1)
    m = torch.zeros(size, size, dtype=torch.float64)
    rows = torch.arange(size)
    m.index_put_((rows, top + lo), 1 - frac, accumulate=True)
    m.index_put_((rows, top + hi), frac, accumulate=True)
    return m


@functools.lru_cache(maxsize=64)
def _zoom_operator(h: int, w: int, factors: tuple[float, ...]) -> SeparableSum:
    return SeparableSum([(_zoom_matrix(h, f), _zoom_matrix(w, f)) for f in factors])


def clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The reference ``clipped_zoom`` (centre zoom by ``factor`` >= 1) of a (N, C, H, W) batch."""
    return _zoom_operator(x.shape[-2], x.shape[-1], (float(factor),))(x)


def zoom_blur(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    factors = params_for(x, severity, ZOOM)
    # the reference averages the image itself (factor 1 again) with one zoom per factor
    out = _zoom_operator(x.shape[-2], x.shape[-1], (1.0,) + factors)(x)
    return (out / (len(factors) + 1)).clamp_(0, 1) * 255


CORRUPTIONS = {
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "gaussian_blur": gaussian_blur,
}
