"""Weather corruptions (snow, frost, fog, spatter) as batched torch code.

Recipes of the reference generator (hendrycks/robustness ``make_cifar_c.py`` for images up to
32x32, ``make_tinyimagenet_c.py`` up to 64x64, ``make_imagenet_c.py`` above); every random draw
comes from the generator.

- snow: a thresholded, zoomed normal layer streaked by ImageMagick's motion blur (angle
  U(-135, -45)), added with its 180-degree rotation to a greyed-up image.
- frost: ``a * x + b * texture`` with a random crop of one of five frost photographs. The
  photographs are not shipped: pass ``texture_dir`` (see ``FROST_TEXTURE_URL_HINT``); without it
  a procedural texture stands in (``procedural_frost``).
- fog: a diamond-square plasma fractal per image added to the image, then rescaled; the
  fractal's side is the next power of two >= the image side (32, 64 and 256 in the reference).
- spatter: water drops (severities 1-3: OpenCV Canny edges, distance transform, histogram
  equalisation, emboss, pale turquoise) or mud (4-5: blurred dark brown blobs).
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ...errors import UserError
from ...rundir import PROCEDURAL_FROST
from .blur import clipped_zoom, filter2d, gaussian_filter, imagemagick_quantize, line_blur, separable_filter
from .params import params_for

# (CIFAR-10-C, Tiny-ImageNet-C, ImageNet-C) tables, indexed by severity - 1 (see params_for)
# (mean, std, zoom, threshold, blur radius, blur sigma, image blend)
SNOW = (((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
        ((0.1, 0.2, 1, 0.6, 8, 3, 0.8), (0.1, 0.2, 1, 0.5, 10, 4, 0.8), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6)),
        ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
         (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)))
# (image weight, frost weight, texture resize factor before cropping)
FROST = (((1, 0.2, 0.2), (1, 0.3, 0.2), (0.9, 0.4, 0.2), (0.85, 0.4, 0.2), (0.75, 0.45, 0.2)),
         ((1, 0.3, 0.3), (0.9, 0.4, 0.3), (0.8, 0.45, 0.3), (0.75, 0.5, 0.3), (0.7, 0.55, 0.3)),
         ((1, 0.4, 1), (0.8, 0.6, 1), (0.7, 0.7, 1), (0.65, 0.7, 1), (0.6, 0.75, 1)))
# (fog strength, wibble decay)
FOG = (((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
       ((0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)),
       ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)))
# (mean, std, blur sigma, threshold, water: drop strength | mud: mask sigma, mud?)
SPATTER = (((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
            (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
           ((0.62, 0.1, 0.7, 0.7, 0.6, 0), (0.65, 0.1, 0.8, 0.7, 0.6, 0), (0.65, 0.3, 1, 0.69, 0.6, 0),
            (0.65, 0.1, 0.7, 0.68, 0.6, 1), (0.65, 0.1, 0.5, 0.67, 0.6, 1)),
           ((0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
            (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1)))

FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")  # frost6.jpg is unused
FROST_TEXTURE_URL_HINT = (
    "https://github.com/hendrycks/robustness/tree/master/ImageNet-C/create_c "
    "(frost1.png frost2.png frost3.png frost4.jpg frost5.jpg)"
)
WATER_RGB = (175 / 255, 238 / 255, 238 / 255)  # pale turquoise
MUD_RGB = (63 / 255, 42 / 255, 20 / 255)
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # OpenCV RGB2GRAY


def snow_layer(n: int, h: int, w: int, mean: float, std: float, zoom: float, threshold: float,
               generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(N, 1, H, W) snow flakes: zoomed, thresholded normal noise, as the 8-bit image the
    reference hands to ImageMagick's motion blur."""
    layer = torch.randn((n, 1, h, w), generator=generator, device=device) * std + mean
    layer = clipped_zoom(layer, zoom)
    layer = torch.where(layer < threshold, 0, layer)
    return (layer.clamp(0, 1) * 255).floor_() / 255


def snow_background(x: torch.Tensor, blend: float) -> torch.Tensor:
    """blend * x + (1 - blend) * max(x, 1.5 gray(x) + 0.5): the scene whitened under snow."""
    gray = _rgb_to_gray(x).mul_(1.5).add_(0.5)
    return torch.maximum(x, gray).lerp_(x, blend)


def snow(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    mean, std, zoom, threshold, radius, sigma, blend = params_for(x, severity, SNOW)
    n, _, h, w = x.shape
    layer = snow_layer(n, h, w, mean, std, zoom, threshold, generator, x.device)
    angle = torch.rand(n, generator=generator, device=x.device, dtype=torch.float64) * 90 - 135
    layer = imagemagick_quantize(line_blur(layer, radius, sigma, angle)) / 255
    # the streaks and their 180-degree rotation
    return snow_background(x, blend).add_(layer + layer.flip(-2, -1)).clamp_(0, 1).mul_(255)


def _rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """OpenCV's RGB2GRAY of (N, 3, H, W) as (N, 1, H, W), unrounded."""
    weights = torch.tensor(GRAY_WEIGHTS, device=x.device, dtype=x.dtype)
    return (x.permute(0, 2, 3, 1) @ weights).unsqueeze(1)


def frost_source(texture_dir: str | Path | None) -> str:
    """One line for run metadata: where frost textures come from."""
    return f"reference textures from {texture_dir}" if texture_dir is not None else PROCEDURAL_FROST


@functools.lru_cache(maxsize=8)
def _frost_textures(texture_dir: str, scale: float, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The five reference textures as float (3, H, W) RGB in 0..255, resized by ``scale``.

    The reference resizes with OpenCV's INTER_LINEAR (half-pixel centres, no antialiasing);
    at 0.2 that picks every fifth pixel.
    """
    textures = []
    for name in FROST_FILES:
        path = Path(texture_dir) / name
        if not path.is_file():
            raise UserError(f"frost texture {name} missing from {texture_dir}; "
                             f"get the files from {FROST_TEXTURE_URL_HINT}")
        try:
            rgb = np.asarray(Image.open(path).convert("RGB"))
        except OSError as error:  # PIL's "cannot identify image file" included
            raise UserError(f"frost texture {path} cannot be read ({error}); get the files from "
                            f"{FROST_TEXTURE_URL_HINT}") from None
        t = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float()[None]
        if scale != 1:
            t = F.interpolate(t, scale_factor=scale, mode="bilinear", align_corners=False,
                              recompute_scale_factor=False)
        textures.append(t[0].to(device))
    return tuple(textures)


def _random_crops(textures: tuple[torch.Tensor, ...], n: int, h: int, w: int,
                  generator: torch.Generator) -> torch.Tensor:
    """One (h, w) crop per image of a texture drawn uniformly, at a uniform position."""
    device = textures[0].device
    choice = torch.randint(len(textures), (n,), generator=generator, device=device)
    u = torch.rand((2, n), generator=generator, device=device)
    out = torch.empty((n, 3, h, w), device=device)
    for k, tex in enumerate(textures):
        if tex.shape[1] <= h or tex.shape[2] <= w:
            # bigger images than the reference's: enlarge the texture just enough (our rule)
            factor = max((h + 1) / tex.shape[1], (w + 1) / tex.shape[2])
            size = (math.ceil(tex.shape[1] * factor), math.ceil(tex.shape[2] * factor))
            tex = F.interpolate(tex[None], size=size, mode="bilinear", align_corners=False)[0]
        pick = (choice == k).nonzero().flatten()
        # the reference's randint(0, size - crop): start in [0, size - crop)
        top = (u[0, pick] * (tex.shape[1] - h)).long()
        left = (u[1, pick] * (tex.shape[2] - w)).long()
        rows = top[:, None, None] + torch.arange(h, device=device)[None, :, None]
        cols = left[:, None, None] + torch.arange(w, device=device)[None, None, :]
        out[pick] = tex[:, rows, cols].permute(1, 0, 2, 3)
    return out


@functools.lru_cache(maxsize=32)
def _resize_matrix(size_in: int, size_out: int, mode: str, device: torch.device) -> torch.Tensor:
    """(size_out, size_in) matrix of ``F.interpolate``'s weights along one axis."""
    basis = torch.eye(size_in, device=device).view(size_in, 1, size_in, 1)
    return F.interpolate(basis, size=(size_out, 1), mode=mode, align_corners=False)[:, 0, :, 0].T


def _resize(x: torch.Tensor, h: int, w: int, mode: str) -> torch.Tensor:
    """``F.interpolate(x, (h, w), mode=mode, align_corners=False)`` for the separable 'bilinear'
    and 'bicubic' modes, as two matrix products: much faster on the CPU for small images."""
    if x.shape[-2:] == (h, w):
        return x
    rows = _resize_matrix(x.shape[-2], h, mode, x.device)
    return rows @ x @ _resize_matrix(x.shape[-1], w, mode, x.device).T


def procedural_frost(n: int, h: int, w: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """ppsearch's stand-in for the frost photographs: (n, 3, h, w) float in 0..255.

    Ice-crystal streaks: three octaves of noise, each smeared along its own random direction
    with ``line_blur``, summed and sharpened into bright needles over a hazy, uneven veil,
    tinted pale blue-white. Its statistics follow random crops of the reference textures at
    the CIFAR scale: channel means about 145, 165, 177 (RGB), spread about 20 within a crop,
    crop brightness varying by about 37 from image to image (as the five photographs do).
    """
    # each octave: noise on a grid 1, 2 or 4 times coarser, smeared along its own direction
    # (on a margin so that no streak starts at the border), then enlarged to the image
    radius = 3 * max(h, w) / 32
    margin = math.ceil(radius)
    streaks = torch.zeros((n, 1, h, w), device=device)
    for octave, weight in ((1, 1.0), (2, 0.7), (4, 0.5)):
        size = (math.ceil(h / octave) + 2 * margin, math.ceil(w / octave) + 2 * margin)
        noise = torch.randn((n, 1) + size, generator=generator, device=device)
        angle = torch.rand(n, generator=generator, device=device, dtype=torch.float64) * 360
        smear = line_blur(noise, radius, radius / 2, angle)[..., margin:-margin, margin:-margin]
        streaks.add_(_resize(smear, h, w, "bilinear"), alpha=weight)
    std, mean = torch.std_mean(streaks, (2, 3), keepdim=True)
    streaks = streaks.sub_(mean).div_(std)
    needles = torch.relu(streaks - 0.8)
    haze = _resize(torch.rand((n, 1, 3, 3), generator=generator, device=device), h, w, "bicubic")
    brightness = 0.6 + 0.8 * torch.rand((n, 1, 1, 1), generator=generator, device=device)
    ice = brightness * (0.61 + 0.15 * haze + 0.05 * streaks + 0.15 * needles)
    tint = torch.tensor((0.80, 0.92, 1.0), device=device).view(1, 3, 1, 1) * 255
    return (ice * tint).clamp_(0, 255)


def frost(x: torch.Tensor, severity: int, generator: torch.Generator,
          texture_dir: str | Path | None = None) -> torch.Tensor:
    """``a * x + b * frost`` in the 0..255 scale.

    Textures come from ``texture_dir`` (the reference's frost1.png ... frost5.jpg, raising
    ValueError naming a missing file) or from ``procedural_frost`` when None. Our rule for
    images larger than a (resized) texture: the texture is enlarged just enough to crop them.
    """
    a, b, scale = params_for(x, severity, FROST)
    n, _, h, w = x.shape
    if texture_dir is None:
        texture = procedural_frost(n, h, w, generator, x.device)
    else:
        textures = _frost_textures(str(Path(texture_dir).resolve()), scale, x.device)
        texture = _random_crops(textures, n, h, w, generator)
    return texture.mul_(b).add_(x, alpha=a * 255).clamp_(0, 255)


def plasma_fractal(n: int, mapsize: int, wibble_decay: float, generator: torch.Generator,
                   device: torch.device) -> torch.Tensor:
    """The reference's diamond-square heightmap, one per image: (n, mapsize, mapsize) in [0, 1].

    ``mapsize`` must be a power of two. Random offsets are uniform in +-wibble^2 (the
    reference multiplies a U(-wibble, wibble) draw by wibble), wibble starting at 100 and
    divided by ``wibble_decay`` at each halving of the step.
    """
    if mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two, got {mapsize}")
    grid = torch.zeros((n, mapsize, mapsize), device=device, dtype=torch.float64)
    step, wibble = mapsize, 100.0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        noise = torch.rand(total.shape, generator=generator, device=device, dtype=torch.float64)
        return noise.mul_(2 * wibble * wibble).sub_(wibble * wibble).add_(total, alpha=0.25)

    while step >= 2:
        half = step // 2
        corners = grid[:, ::step, ::step]
        # squares: centre = mean of the four corners (wrapping around the map)
        total = corners + corners.roll(-1, 1)
        grid[:, half::step, half::step] = wibbled_mean(total + total.roll(-1, 2))
        centres = grid[:, half::step, half::step]
        corners = grid[:, ::step, ::step]
        # diamonds: edge midpoints = mean of the two corners and the two centres beside them
        grid[:, ::step, half::step] = wibbled_mean(centres + centres.roll(1, 1) + corners + corners.roll(-1, 2))
        grid[:, half::step, ::step] = wibbled_mean(centres + centres.roll(1, 2) + corners + corners.roll(-1, 1))
        step //= 2
        wibble /= wibble_decay
    grid -= grid.amin((1, 2), keepdim=True)
    return grid / grid.amax((1, 2), keepdim=True)


def fog(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    strength, decay = params_for(x, severity, FOG)
    n, _, h, w = x.shape
    mapsize = 1 << (max(h, w) - 1).bit_length()  # 32 for CIFAR, 256 for ImageNet's 224 as in the reference
    fractal = plasma_fractal(n, mapsize, decay, generator, x.device)[:, None, :h, :w].to(x.dtype)
    peak = x.amax((1, 2, 3), keepdim=True)
    return torch.add(x, fractal, alpha=strength).mul_(peak * 255 / (peak + strength)).clamp_(0, 255)


def _box3(x: torch.Tensor) -> torch.Tensor:
    """OpenCV ``blur(x, (3, 3))`` before rounding: 3x3 mean, REFLECT_101 border.

    Built from exact integer taps so that flat regions stay exactly flat.
    """
    return separable_filter(x, (1, 1, 1), (1, 1, 1), "reflect") / 9


def _dilate3(mask: torch.Tensor) -> torch.Tensor:
    """3x3 binary dilation of a bool (..., H, W) mask."""
    p = F.pad(mask, (1, 1, 1, 1))
    rows = p[..., :, :-2] | p[..., :, 1:-1] | p[..., :, 2:]
    return rows[..., :-2, :] | rows[..., 1:-1, :] | rows[..., 2:, :]


def _canny(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """OpenCV ``Canny(x, low, high)`` (aperture 3, L1 gradient) of uint8-valued (N, 1, H, W)."""
    h, w = x.shape[-2:]
    smooth, slope = (1, 2, 1), (-1, 0, 1)  # Sobel, aperture 3
    gx = separable_filter(x, smooth, slope, "replicate").round_().int()
    gy = separable_filter(x, slope, smooth, "replicate").round_().int()
    ax, ay = gx.abs(), gy.abs()
    mag = ax + ay
    padded = F.pad(mag, (1, 1, 1, 1))  # neighbours outside the image count as 0

    def neighbour(dy: int, dx: int) -> torch.Tensor:
        return padded[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    # gradient direction sectors by OpenCV's fixed-point test (tan 22.5 deg ~ 13573 / 2^15)
    ay = ay * 32768
    tg22 = ax * 13573
    tg67 = tg22 + ax * 65536
    diagonal = torch.where(gx * gy < 0, -1, 1)
    horizontal = (mag > neighbour(0, -1)) & (mag >= neighbour(0, 1))
    vertical = (mag > neighbour(-1, 0)) & (mag >= neighbour(1, 0))
    diag_pos = (mag > neighbour(-1, -1)) & (mag > neighbour(1, 1))
    diag_neg = (mag > neighbour(-1, 1)) & (mag > neighbour(1, -1))
    maximum = torch.where(ay < tg22, horizontal,
                          torch.where(ay > tg67, vertical, torch.where(diagonal > 0, diag_pos, diag_neg)))
    candidate = maximum & (mag > low)
    edges = candidate & (mag > high)
    while True:  # hysteresis: grow strong edges through 8-connected candidates
        grown = candidate & _dilate3(edges)
        if torch.equal(grown, edges):
            return edges
        edges = grown


def _distance_to(edges: torch.Tensor, cap: int) -> torch.Tensor:
    """Euclidean distance of every pixel to the nearest ``edges`` pixel, at most ``cap``.

    Exact distances (OpenCV's DIST_L2 with a 5x5 mask approximates them within ~2%), in int16:
    first the distance to the nearest edge in the same row (relaxing by shifts of 1, 2, 4, ...
    pixels), then the squared distance as the minimum over rows of dy^2 + that distance^2.
    """
    h, w = edges.shape[-2:]
    reach = cap + 1
    dist = torch.where(edges, 0, reach).to(torch.int16)
    shift = 1
    while shift < min(reach, w):
        dist[..., shift:] = torch.minimum(dist[..., shift:], dist[..., :-shift] + shift)
        dist[..., :-shift] = torch.minimum(dist[..., :-shift], dist[..., shift:] + shift)
        shift *= 2
    row_sq = dist.clamp_(max=reach) ** 2
    sq = row_sq.clone()
    for dy in range(1, min(reach, h)):
        sq[..., dy:, :] = torch.minimum(sq[..., dy:, :], row_sq[..., :-dy, :] + dy * dy)
        sq[..., :-dy, :] = torch.minimum(sq[..., :-dy, :], row_sq[..., dy:, :] + dy * dy)
    return sq.float().sqrt_().clamp_(max=cap)


def _equalize_hist(x: torch.Tensor) -> torch.Tensor:
    """OpenCV ``equalizeHist`` per image of uint8-valued (N, 1, H, W)."""
    n = x.shape[0]
    values = x.reshape(n, -1).long()
    hist = torch.zeros((n, 256), device=x.device).scatter_add_(1, values, torch.ones_like(values, dtype=torch.float32))
    cum = hist.cumsum(1)
    lowest = values.amin(1, keepdim=True)
    base = cum.gather(1, lowest)  # pixels at the lowest level map to 0
    total = values.shape[1]
    # OpenCV's float32 scale; divided in float64 because torch's float32 division is not
    # correctly rounded and halves then round the other way
    scale = (255 / (total - base).double().clamp(min=1)).float()
    lut = ((cum - base) * scale).round_().clamp_(0, 255)
    # a constant image stays as it is
    lut = torch.where(base == total, lowest.float(), lut)
    return lut.gather(1, values).view_as(x)


def water_layer(liquid: torch.Tensor, strength: float) -> torch.Tensor:
    """Drop intensity (N, 1, H, W) of the reference's water spatter from the liquid layer."""
    liquid = (liquid.clamp(0, 1) * 255).floor_()
    edges = _canny(liquid, 50, 150)
    dist = _box3(_distance_to(edges, 20)).floor_()
    dist = _equalize_hist(dist)
    emboss = torch.tensor(((-2.0, -1.0, 0.0), (-1.0, 1.0, 1.0), (0.0, 1.0, 2.0)))
    dist = filter2d(dist, emboss).round_().clamp_(0, 255)
    dist = _box3(dist).round_()
    drops = liquid * dist
    peak = drops.amax((2, 3), keepdim=True)
    # the reference divides by zero when no drop survives; we leave such images clean
    return torch.where(peak > 0, drops / peak.clamp(min=1e-12), 0) * strength


def spatter(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    mean, std, sigma, threshold, strength, mud = params_for(x, severity, SPATTER)
    n, _, h, w = x.shape
    liquid = torch.randn((n, 1, h, w), generator=generator, device=x.device) * std + mean
    liquid = gaussian_filter(liquid, sigma)
    liquid = torch.where(liquid < threshold, 0, liquid)
    if not mud:
        color = torch.tensor(WATER_RGB, device=x.device).view(1, 3, 1, 1)
        return (x + water_layer(liquid, strength) * color).clamp_(0, 1) * 255
    mask = gaussian_filter((liquid > threshold).to(x.dtype), strength)
    mask = torch.where(mask < 0.8, 0, mask)
    color = torch.tensor(MUD_RGB, device=x.device).view(1, 3, 1, 1)
    return (x * (1 - mask) + color * mask).clamp_(0, 1) * 255


CORRUPTIONS = {"snow": snow, "frost": frost, "fog": fog, "spatter": spatter}
