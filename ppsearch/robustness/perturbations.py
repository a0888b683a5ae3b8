"""CIFAR-10-P and ImageNet-P perturbation sequences as batched torch code.

``perturb(images, name, seed)`` turns every image of a uint8 (N, H, W, 3) batch into a sequence
of T frames, uint8 (N, T, H, W, 3), following the recipes of the reference generator
(hendrycks/robustness ``ImageNet-P/create_p/make_cifar_p.py``):

- gaussian_noise, shot_noise, speckle_noise: the clean image, then 30 independent noisy copies
  (sigma 0.02; Poisson rate 700; multiplicative sigma 0.05). Flip probability compares every
  frame with the first.
- motion_blur: 21 frames of ImageMagick's motion blur (radius 6, sigma 1.8) at angles -180..0
  degrees in steps of 9; no clean frame.
- zoom_blur: the clean image, then the running mean of it and its zooms by 1 + 0.004 i.
- snow: one snow layer per image streaked by motion blur (radius 10, sigma 2) at angles
  -150..-30 in steps of 4, 31 frames.
- brightness: HSV value shifted by -0.225..0.225 in steps of 0.015, 31 frames.
- translate: horizontal shifts by -7..8 pixels, 16 frames; rotate: -15..15 degrees;
  scale: factors 0.70..1.30; shear: -15..15 degrees (31 frames each): torchvision's PIL
  ``affine`` (bilinear, zero fill, truncated to uint8 by PIL).
- tilt: OpenCV ``warpPerspective`` of a camera turned by -11.25..11.25 degrees about both axes.
- gaussian_blur: sigma 0.3 + 0.015 i, truncate 7, 31 frames.
- spatter: water drops from one liquid layer per image, smeared one row down per frame. Where
  no drop is left the reference divides 0 by 0 and writes a black frame (about 1% of first
  frames, 10% of last ones); here the frame stays clean, as in ppsearch's spatter corruption.

Images larger than 32x32 follow ImageNet-P's generator (``make_imagenet_p.py``, difficulty 1)
instead (:data:`IMAGENET_P`): noise sigma 0.03 and Poisson rate 300; motion blur radius 10, sigma 3 at
-120..0 degrees in steps of 4 (31 frames); snow zoomed x3 and streaked with radius 14, sigma 4;
brightness steps of 0.02; translation by -20..20 pixels (41 frames); tilt by -15..15 degrees;
scale 0.40..1.15; gaussian blur sigma 0.25 + 0.035 i (truncate 6); spatter's liquid N(0.65, 0.27),
sigma 3.7, threshold 0.69, flowing down with the kernel (0.05, 0.1, 0.15, 0.7). The reference warps
the 256 px image before its 224 px centre crop, so its frames bring in what lies outside the crop;
here the warps act on the image given and fill as the CIFAR recipe does (edge or zero).

Pixel offsets (shifts, blur radii) are the recipe's pixel values whatever the image size; the
reference's ``CenterCrop(32)`` after its affine warps changes nothing on 32x32 images and is left
out. Frames are truncated to uint8 as the reference's ``np.uint8``, ``Tensor.byte`` and PIL do;
only OpenCV (tilt) rounds.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..errors import UserError
from .corruptions import as_float_batch, to_uint8_batch
from .corruptions.blur import filter_matrix, gaussian_filter, gaussian_kernel1d, imagemagick_quantize, line_blur
from .corruptions.color import hsv2rgb, rgb2hsv
from .corruptions.weather import WATER_RGB, snow_background, snow_layer, water_layer
from .names import ALL_PERTURBATIONS as ALL_PERTURBATIONS
from .names import TEST_PERTURBATIONS as TEST_PERTURBATIONS
from .names import VALIDATION_PERTURBATIONS as VALIDATION_PERTURBATIONS

Frames = Iterator[torch.Tensor]  # float (N, 3, H, W) frames on the 0..255 scale, not yet truncated


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One reference generator's parameters: ``make_cifar_p.py`` (CIFAR-10-P, images up to 32x32)
    or ``make_imagenet_p.py`` (ImageNet-P, larger images). Angles and steps are in degrees, shifts
    in pixels; ``frames`` counts include the clean frame where the reference writes one."""

    name: str
    gaussian_sigma: float
    shot_rate: float
    motion: tuple[int, float, float, float, float]  # frames, radius, sigma, first angle, angle step
    snow: tuple[float, float, float]  # zoom of the snow layer, motion-blur radius and sigma
    brightness_step: float  # V shift per frame in percent, frames at -15..15 steps
    translate: tuple[int, int]  # first shift, frames (one pixel per frame)
    tilt_step: float  # degrees per frame about both axes, frames at -15..15 steps
    scale: tuple[float, float]  # percent per frame, first percent (31 frames)
    gaussian_blur: tuple[float, float, float]  # first sigma, step, truncate
    spatter: tuple[float, float, float, float, tuple[float, ...]]  # mean, std, sigma, threshold, flow kernel


CIFAR_P = Recipe("CIFAR-10-P", 0.02, 700, (21, 6, 1.8, -180, 9), (2, 10, 2), 1.5, (-7, 16), 0.75, (2, 70),
                 (0.3, 0.015, 7.0), (0.6, 0.265, 1.75, 0.7, (0.2, 0.8)))
IMAGENET_P = Recipe("ImageNet-P", 0.03, 300, (31, 10, 3, -120, 4), (3, 14, 4), 2, (-20, 41), 1.0, (2.5, 40),
                    (0.25, 0.035, 6.0), (0.65, 0.27, 3.7, 0.69, (0.05, 0.1, 0.15, 0.7)))


def recipe_for(height: int, width: int) -> Recipe:
    """CIFAR-10-P's recipe for images up to 32x32, ImageNet-P's above (as the -C tables)."""
    return CIFAR_P if max(height, width) <= 32 else IMAGENET_P


# ---------------------------------------------------------------- geometric warps

class Warp:
    """Bilinear resampling of (N, C, H, W) batches along fixed per-frame source positions.

    ``xs``, ``ys`` (T, H, W): where each output pixel reads, in pixel units with pixel centres
    at integers. Output pixels not ``valid`` are 0. ``border``: 'edge' (taps outside the image
    read the nearest edge pixel, as PIL does) or 'zero' (they read 0, OpenCV's
    BORDER_CONSTANT). Interpolation is linear along rows, then along columns, in float64 with
    ``torch.lerp``, which like PIL returns equal neighbours' value exactly: flat regions do not
    drop a grey level when truncated.
    """

    def __init__(self, xs: torch.Tensor, ys: torch.Tensor, valid: torch.Tensor, border: str):
        frames, h, w = xs.shape
        x0, y0 = xs.floor(), ys.floor()
        self.fx = (xs - x0).view(frames, h * w, 1)
        self.fy = (ys - y0).view(frames, h * w, 1)
        taps = []
        for dy in (0, 1):
            for dx in (0, 1):
                qx, qy = (x0 + dx).long(), (y0 + dy).long()
                inside = valid.clone()
                if border == "edge":
                    qx, qy = qx.clamp(0, w - 1), qy.clamp(0, h - 1)
                else:
                    inside &= (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)
                taps.append(torch.where(inside, qy * w + qx, h * w))  # index h * w: a zero pixel
        self.index = torch.stack(taps, 1).view(frames, 4 * h * w)

    def __call__(self, x: torch.Tensor) -> Frames:
        n, c, h, w = x.shape
        # one row of N * C values per pixel: gathering whole rows is far faster than scattered values
        rows = x.permute(2, 3, 0, 1).reshape(h * w, n * c)
        rows = torch.cat((rows, rows.new_zeros(1, n * c))).double()
        # scratch reused across frames: allocating tens of MB per frame costs more than the work
        taps = rows.new_empty(4 * h * w, n * c)
        top, bottom = rows.new_empty(2, h * w, n * c)
        for index, fx, fy in zip(self.index.to(x.device), self.fx.to(x.device), self.fy.to(x.device)):
            a, b, p, q = torch.index_select(rows, 0, index, out=taps).view(4, h * w, n * c)
            torch.lerp(a, b, fx, out=top)
            torch.lerp(p, q, fx, out=bottom)
            yield torch.lerp(top, bottom, fy).view(h, w, n, c).permute(2, 3, 0, 1)


def _pixel_grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    return xs, ys


def _pil_affine_sources(h: int, w: int, angle: float = 0.0, translate: tuple[float, float] = (0.0, 0.0),
                        scale: float = 1.0, shear: float = 0.0) -> tuple[torch.Tensor, ...]:
    """Where torchvision's ``affine`` of a PIL image reads each output pixel, and which are inside.

    torchvision maps a point ``q`` to ``c + t + scale * R(angle) @ ShearX(shear) @ (q - c)``
    about the centre ``c = (w / 2, h / 2)`` (degrees; positive angles turn clockwise on
    screen) and hands PIL the inverse as six coefficients; PIL evaluates them at every output
    pixel centre (continuous coordinates: pixel i spans [i, i + 1)) and fills with 0 where
    they land outside the image. The coefficients are formed in torchvision's order so that
    samples landing exactly on a pixel do so here too.
    """
    rot, sx = math.radians(angle), math.radians(shear)
    cx, cy = w * 0.5, h * 0.5
    # rotation-shear matrix [[a, b], [c, d]] (determinant 1); m* is its inverse over the scale
    a, b = math.cos(rot), -math.cos(rot) * math.tan(sx) - math.sin(rot)
    c, d = math.sin(rot), -math.sin(rot) * math.tan(sx) + math.cos(rot)
    m0, m1, m3, m4 = d / scale, -b / scale, -c / scale, a / scale
    m2 = m0 * (-cx - translate[0]) + m1 * (-cy - translate[1]) + cx
    m5 = m3 * (-cx - translate[0]) + m4 * (-cy - translate[1]) + cy
    xs, ys = _pixel_grid(h, w)
    qx = m0 * (xs + 0.5) + m1 * (ys + 0.5) + m2
    qy = m3 * (xs + 0.5) + m4 * (ys + 0.5) + m5
    valid = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)
    return qx - 0.5, qy - 0.5, valid


def _tilt_sources(h: int, w: int, degrees: float) -> tuple[torch.Tensor, ...]:
    """Where the reference's tilt (OpenCV ``warpPerspective``) reads each output pixel.

    The homography projects the image plane turned by ``degrees`` about its x and y axes
    through a pinhole at focal length ``sqrt(w^2 + h^2)``; OpenCV evaluates its inverse at
    integer pixel positions.
    """
    t = math.radians(degrees)
    f = math.hypot(w, h)
    centre = torch.tensor([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1], [0, 0, 1]], dtype=torch.float64)
    turn_x = torch.tensor([[1, 0, 0, 0], [0, math.cos(t), -math.sin(t), 0],
                           [0, math.sin(t), math.cos(t), 0], [0, 0, 0, 1]], dtype=torch.float64)
    turn_y = torch.tensor([[math.cos(t), 0, -math.sin(t), 0], [0, 1, 0, 0],
                           [math.sin(t), 0, math.cos(t), 0], [0, 0, 0, 1]], dtype=torch.float64)
    push = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]], dtype=torch.float64)
    project = torch.tensor([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0]], dtype=torch.float64)
    inverse = torch.linalg.inv(project @ push @ turn_x @ turn_y @ centre)
    xs, ys = _pixel_grid(h, w)
    src = inverse @ torch.stack((xs.flatten(), ys.flatten(), torch.ones(h * w, dtype=torch.float64)))
    qx, qy = (src[:2] / src[2]).view(2, h, w)
    return qx, qy, torch.ones(h, w, dtype=torch.bool)


# per warp: frame geometries (given the recipe), border, and how the library turns interpolated
# values into uint8
_WARPS = {
    # nearest in the reference; whole-pixel shifts read exactly one pixel either way
    "translate": (lambda r, h, w: [_pil_affine_sources(h, w, translate=(r.translate[0] + i, 0))
                                   for i in range(r.translate[1])], "edge", "floor"),
    "rotate": (lambda r, h, w: [_pil_affine_sources(h, w, angle=i - 15) for i in range(31)], "edge", "floor"),
    "scale": (lambda r, h, w: [_pil_affine_sources(h, w, scale=(r.scale[0] * i + r.scale[1]) / 100)
                               for i in range(31)],
              "edge", "floor"),
    "shear": (lambda r, h, w: [_pil_affine_sources(h, w, shear=i - 15) for i in range(31)], "edge", "floor"),
    "zoom_blur": (lambda r, h, w: [_pil_affine_sources(h, w, scale=1 + 0.004 * i) for i in range(1, 31)],
                  "edge", "floor"),
    "tilt": (lambda r, h, w: [_tilt_sources(h, w, r.tilt_step * (i - 15)) for i in range(31)], "zero", "round"),
}


@functools.lru_cache(maxsize=32)
def _warp(name: str, h: int, w: int) -> Warp:
    sources, border, _ = _WARPS[name]
    xs, ys, valid = (torch.stack(parts) for parts in zip(*sources(recipe_for(h, w), h, w)))
    return Warp(xs, ys, valid, border)


def _warped_levels(name: str, x: torch.Tensor, generator: torch.Generator | None = None) -> Frames:
    """The uint8 levels (as floats) of each frame of warp ``name``: PIL truncates, OpenCV rounds."""
    quantize = _WARPS[name][2]
    for frame in _warp(name, *x.shape[-2:])((x * 255).round_()):
        yield (frame.floor_() if quantize == "floor" else frame.add_(0.5).floor_()).float()


# ---------------------------------------------------------------- perturbations

def _noise_frames(x: torch.Tensor, noisy: Callable[[], torch.Tensor]) -> Frames:
    yield x * 255
    for _ in range(30):
        yield noisy().clamp_(0, 1) * 255


def gaussian_noise(x: torch.Tensor, generator: torch.Generator) -> Frames:
    sigma = recipe_for(*x.shape[-2:]).gaussian_sigma
    return _noise_frames(x, lambda: x + sigma * torch.randn(x.shape, generator=generator, device=x.device))


def shot_noise(x: torch.Tensor, generator: torch.Generator) -> Frames:
    rate = recipe_for(*x.shape[-2:]).shot_rate
    return _noise_frames(x, lambda: torch.poisson(x * rate, generator=generator) / rate)


def speckle_noise(x: torch.Tensor, generator: torch.Generator) -> Frames:
    return _noise_frames(x, lambda: x + x * 0.05 * torch.randn(x.shape, generator=generator, device=x.device))


def _angles(x: torch.Tensor, degrees: float) -> torch.Tensor:
    return torch.full((x.shape[0],), float(degrees), dtype=torch.float64, device=x.device)


def motion_blur(x: torch.Tensor, generator: torch.Generator) -> Frames:
    frames, radius, sigma, first, step = recipe_for(*x.shape[-2:]).motion
    for i in range(frames):
        yield imagemagick_quantize(line_blur(x, radius, sigma, _angles(x, first + step * i)))


def zoom_blur(x: torch.Tensor, generator: torch.Generator) -> Frames:
    # the reference sums PIL's uint8 frames as float32 tensors (ToTensor) and truncates the mean
    total = x
    yield x * 255
    for i, zoomed in enumerate(_warped_levels("zoom_blur", x), start=2):
        total = total + zoomed / 255
        yield total / i * 255


def snow(x: torch.Tensor, generator: torch.Generator) -> Frames:
    n, _, h, w = x.shape
    zoom, radius, sigma = recipe_for(h, w).snow
    layer = snow_layer(n, h, w, 0.05, 0.3, zoom, 0.5, generator, x.device)
    base = snow_background(x, 0.85)
    for i in range(31):
        streaks = imagemagick_quantize(line_blur(layer, radius, sigma, _angles(x, 4 * i - 150))) / 255
        yield (base + streaks + streaks.flip(-2, -1)).clamp_(0, 1) * 255


def brightness(x: torch.Tensor, generator: torch.Generator) -> Frames:
    # float64 from the exact grey levels, like the reference's numpy code, so that the
    # truncation to uint8 agrees bit for bit
    hsv = rgb2hsv((x * 255).round().double() / 255)
    # HSV -> RGB multiplies V by factors of H and S alone (V, V(1-S), V(1-fS), V(1-(1-f)S)):
    # taking them at V = 1 once gives every frame with the same floating-point products
    factors = hsv2rgb(torch.cat((hsv[:, :2], torch.ones_like(hsv[:, 2:])), 1))
    step = recipe_for(*x.shape[-2:]).brightness_step
    for i in range(31):
        value = (hsv[:, 2:] + (i - 15) * step / 100).clamp_(0, 1)
        yield (value * factors * 255).floor_().float()


@functools.lru_cache(maxsize=8)
def _blur_matrices(size: int, recipe: Recipe) -> torch.Tensor:
    """(31, size, size) float64 ``skimage.filters.gaussian`` matrices (the recipe's sigmas and
    truncation, edge border)."""
    first, step, truncate = recipe.gaussian_blur
    return torch.stack([filter_matrix(size, gaussian_kernel1d(first + step * i, truncate), "replicate")
                        for i in range(31)])


def gaussian_blur(x: torch.Tensor, generator: torch.Generator) -> Frames:
    # float64 like skimage, so that the truncation to uint8 agrees bit for bit
    levels = (x * 255).round_().double() / 255
    recipe = recipe_for(*x.shape[-2:])
    rows, cols = (_blur_matrices(size, recipe).to(x.device) for size in x.shape[-2:])
    for vertical, horizontal in zip(rows, cols):
        yield (vertical @ levels @ horizontal.T * 255).floor_().float()


def spatter(x: torch.Tensor, generator: torch.Generator) -> Frames:
    n, _, h, w = x.shape
    mean, std, sigma, threshold, flow = recipe_for(h, w).spatter
    liquid = torch.randn((n, 1, h, w), generator=generator, device=x.device) * std + mean
    liquid = gaussian_filter(liquid, sigma)
    liquid = torch.where(liquid < threshold, 0, liquid)
    color = torch.tensor(WATER_RGB, device=x.device).view(1, 3, 1, 1)
    for _ in range(31):
        yield (x + water_layer(liquid, 0.6) * color).clamp_(0, 1) * 255
        liquid = flow_down(liquid, flow)


def flow_down(liquid: torch.Tensor, kernel: tuple[float, ...]) -> torch.Tensor:
    """``np.convolve(column, kernel, mode='same')`` down every column: row i receives
    ``kernel[j] * liquid[i + (len(kernel) - 1) // 2 - j]`` (zero outside the image)."""
    h, lead = liquid.shape[2], (len(kernel) - 1) // 2
    padded = torch.nn.functional.pad(liquid, (0, 0, len(kernel) - 1 - lead, lead))
    return sum(weight * padded[:, :, len(kernel) - 1 - j:len(kernel) - 1 - j + h] for j, weight in enumerate(kernel))


PERTURBATIONS: dict[str, Callable[[torch.Tensor, torch.Generator], Frames]] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "brightness": brightness,
    "translate": functools.partial(_warped_levels, "translate"),
    "rotate": functools.partial(_warped_levels, "rotate"),
    "tilt": functools.partial(_warped_levels, "tilt"),
    "scale": functools.partial(_warped_levels, "scale"),
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "spatter": spatter,
    "shear": functools.partial(_warped_levels, "shear"),
}


def perturb(images: np.ndarray | torch.Tensor, name: str, seed: int = 0) -> np.ndarray | torch.Tensor:
    """Turn every image of a uint8 (N, H, W, 3) batch into its perturbation sequence ``name``.

    Returns uint8 (N, T, H, W, 3) of the same type and device as ``images``; deterministic for
    a given seed (all random draws come from one ``torch.Generator`` seeded with it).
    """
    if name not in PERTURBATIONS:
        raise UserError(f"unknown perturbation {name!r}; allowed: {', '.join(ALL_PERTURBATIONS)}")
    x = as_float_batch(images)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    with torch.inference_mode():
        frames = torch.stack([to_uint8_batch(frame) for frame in PERTURBATIONS[name](x, generator)], 1)
    return frames.cpu().numpy() if isinstance(images, np.ndarray) else frames
