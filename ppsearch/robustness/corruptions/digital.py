"""Digital corruptions: brightness, contrast, saturate, elastic transform, pixelate, JPEG.

Parameters per severity 1..5 come from make_cifar_c.py for images up to 32x32,
make_tinyimagenet_c.py up to 64x64 and make_imagenet_c.py above (see ``params_for``). Elastic
transform's parameters are fractions of the image size: CIFAR-C's and Tiny-ImageNet-C's times
``min(H, W)`` (32 and 64 in the reference), ImageNet-C's times ``244 / 224 * min(H, W)`` (the
reference's 244 for its 224-pixel images).
"""
from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torchvision.io import decode_jpeg, encode_jpeg

from .color import hsv2rgb, rgb2hsv
from .params import params_for

# (CIFAR-10-C, Tiny-ImageNet-C, ImageNet-C) tables, indexed by severity - 1
BRIGHTNESS_SHIFT = ((0.05, 0.1, 0.15, 0.2, 0.3), (0.1, 0.2, 0.3, 0.4, 0.5), (0.1, 0.2, 0.3, 0.4, 0.5))
CONTRAST_FACTOR = ((0.75, 0.5, 0.4, 0.3, 0.15), (0.4, 0.3, 0.2, 0.1, 0.05), (0.4, 0.3, 0.2, 0.1, 0.05))
SATURATE_SCALE_SHIFT = (
    ((0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2)),
    ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (30.0, 0.2)),
    ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)),
)
PIXELATE_FACTOR = ((0.95, 0.9, 0.85, 0.75, 0.65), (0.9, 0.8, 0.7, 0.6, 0.5), (0.6, 0.5, 0.4, 0.3, 0.25))
JPEG_QUALITY = ((80, 65, 58, 50, 40), (65, 58, 50, 40, 25), (25, 18, 15, 10, 7))
# (alpha, sigma, affine) as fractions of the image size.
ELASTIC_ALPHA_SIGMA_AFFINE = (
    ((0.0, 0.0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)),
    ((0.0, 0.0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03), (0.16, 0.03, 0.02)),
    ((2.0, 0.7, 0.1), (2.0, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02)),
)


def _to_255(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1) * 255


def _grey_levels(x: torch.Tensor) -> torch.Tensor:
    """The uint8 values the [0, 1] batch was made from, as floats."""
    return (x * 255).round()


def _edit_hsv_exact(levels: torch.Tensor, channel: int, scale: float, shift: float) -> torch.Tensor:
    """Scale and shift one HSV channel (clipped to [0, 1]) of RGB grey levels (..., 3, H, W);
    return 0..255 RGB, truncated.

    Works in float64 from the exact grey levels, like the reference's numpy code: the result
    then truncates to the reference's uint8 values bit for bit.
    """
    hsv = rgb2hsv(levels.double() / 255)
    hsv[:, channel] = (hsv[:, channel] * scale + shift).clamp(0, 1)
    return _to_255(hsv2rgb(hsv)).floor().float()


@functools.cache
def _hsv_edit_tables(channel: int, scale: float, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``_edit_hsv_exact`` makes of a pixel's largest and smallest channels, which depends
    on those two levels only.

    Returns a flat table indexed by ``max * 256 + level``: the new largest channel where the
    level is the max, else the new smallest channel; and per level the new green and blue
    of a grey pixel of that level (grey pixels have hue 0: red is the largest channel).
    """
    hi, lo = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    out = _edit_hsv_exact(torch.stack((hi, lo, lo))[None], channel, scale, shift)[0]
    table = torch.where(hi == lo, out[0], out[1])
    return table.flatten(), out[1].diagonal()


def _edit_hsv(x: torch.Tensor, channel: int, scale: float, shift: float) -> torch.Tensor:
    """``_edit_hsv_exact`` of the batch's grey levels, without float64 on the whole batch.

    An edit of S or V keeps the hue, so each pixel's new largest and smallest channels
    depend on its old largest and smallest only: an exact table gives them. The middle
    channel is interpolated in float32, whose error (< 1e-4 levels) only matters where the
    result is within 1e-3 of an integer; those few pixels are redone with the exact code.
    """
    levels = _grey_levels(x)
    hi, lo = levels.amax(1, keepdim=True), levels.amin(1, keepdim=True)
    mid = levels.sum(1, keepdim=True) - hi - lo
    table, grey_table = (t.to(x.device) for t in _hsv_edit_tables(channel, scale, shift))
    out = table.index_select(0, levels.add(hi * 256).int().flatten()).view_as(levels)
    if not torch.equal(grey_table, table[::257]):  # grey pixels: green and blue differ from red
        grey = hi == lo
        out[:, 1:] = torch.where(grey, grey_table.index_select(0, hi.int().flatten()).view_as(hi), out[:, 1:])

    v, s = hi / 255, (hi - lo) / hi.clamp(min=1)
    if channel == 2:
        v = (v * scale + shift).clamp_(0, 1)
    else:
        s = (s * scale + shift).clamp_(0, 1)
    new_hi = v * 255
    new_lo = new_hi * (1 - s)
    new_mid = torch.addcmul(new_lo, (mid - lo) / (hi - lo).clamp(min=1), new_hi - new_lo)
    has_mid = (mid > lo) & (mid < hi)  # else the middle channel ties with one of the others
    out = torch.where(levels == torch.where(has_mid, mid, -1), new_mid, out)

    near = ((new_mid - new_mid.round()).abs() < 1e-3) & has_mid
    image, row, col = near[:, 0].nonzero(as_tuple=True)
    if image.numel():
        pixels = levels[image, :, row, col].T[None, :, :, None]  # (1, 3, K, 1)
        out[image, :, row, col] = _edit_hsv_exact(pixels, channel, scale, shift)[0, :, :, 0].T
    return out


def brightness(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Add a constant to the HSV value channel."""
    shift = params_for(x, severity, BRIGHTNESS_SHIFT)
    return _edit_hsv(x, 2, 1.0, shift)


def saturate(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Scale and shift the HSV saturation channel."""
    scale, shift = params_for(x, severity, SATURATE_SCALE_SHIFT)
    return _edit_hsv(x, 1, scale, shift)


def contrast(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Shrink each channel towards its per-image mean."""
    factor = params_for(x, severity, CONTRAST_FACTOR)
    means = x.mean((2, 3), keepdim=True)
    return _to_255((x - means) * factor + means)


# PIL's fixed-point resampling: 22 fractional bits, results rounded half up and clipped to uint8.
_PIL_PRECISION_BITS = 22


@functools.cache
def _pil_box_weights(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PIL's BOX resize along one axis: an (out, in) 0/1 matrix of the pixels each output
    sums, and per output the fixed-point weight of each of them divided by 2**22.

    PIL samples the box filter at input pixel centres (it is not an area average), and
    within a row all weights are equal: ``floor(0.5 + 2**22 / count)``.
    """
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 0.5 * filter_scale
    inside = torch.zeros(out_size, in_size)
    for out in range(out_size):
        center = (out + 0.5) * scale
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), in_size)
        inside[out, lo:hi] = torch.tensor(
            [-0.5 < (i - center + 0.5) * (1.0 / filter_scale) <= 0.5 for i in range(lo, hi)],
            dtype=torch.float32,
        )
    weight = torch.floor(0.5 + (1 << _PIL_PRECISION_BITS) / inside.sum(1).double())
    return inside, (weight / (1 << _PIL_PRECISION_BITS)).float()


def _pil_round(total: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """PIL's fixed-point ``floor((total * w + 2**21) / 2**22)`` for integer sums ``total``.

    Exact in float32: ``total`` (at most 255 * count) is exact, ``w`` (23 bits) too, and a
    product that truly rounds down lies at least ``total / (count * 2**22)`` below the
    half-way point, four times the product's worst float32 rounding error. The result
    never leaves 0..255, so PIL's clip is not needed.
    """
    return torch.addcmul(torch.full((), 0.5, device=total.device), total, weight).floor_()


def _pil_box_resize(levels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """PIL ``resize(..., BOX)`` of float grey levels: horizontal pass, uint8, vertical pass."""
    w_inside, w_weight = (t.to(levels.device) for t in _pil_box_weights(levels.shape[-1], width))
    h_inside, h_weight = (t.to(levels.device) for t in _pil_box_weights(levels.shape[-2], height))
    rows = _pil_round(levels @ w_inside.T, w_weight)
    return _pil_round(h_inside @ rows, h_weight[:, None])


def pixelate(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """PIL BOX downscale by a factor, then BOX upscale back to the original size."""
    factor = params_for(x, severity, PIXELATE_FACTOR)
    h, w = x.shape[-2:]
    small = _pil_box_resize(_grey_levels(x), int(h * factor), int(w * factor))
    return _pil_box_resize(small, h, w)


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
    """Separable Gaussian blur over H and W of a channels-last (N, H, W, C) field, scipy
    'reflect' borders, truncate=3."""
    n, h, w, c = field.shape
    rows = _gaussian_blur_matrix(h, sigma, field.device)
    # the W axis and the channels interleave: blur W with the identity on the channels
    cols = torch.kron(_gaussian_blur_matrix(w, sigma, field.device), torch.eye(c, device=field.device))
    return (rows @ field.reshape(n, h, w * c) @ cols.T).view(n, h, w, c)


def _sample(x: torch.Tensor, grid: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Bilinear sampling at normalised coordinates with mirrored borders.

    align_corners=True mirrors about the edge pixel centres (OpenCV REFLECT_101);
    False mirrors about the image edges (scipy 'reflect').
    """
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=align_corners)


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
    inverse = torch.linalg.solve(F.pad(dst, (0, 1), value=1.0), src)  # (N, 3, 2), pixel coords
    # the same map between align_corners=True normalised coordinates, for affine_grid
    to_pixels = torch.tensor([[(w - 1) / 2, 0, 0], [0, (h - 1) / 2, 0], [(w - 1) / 2, (h - 1) / 2, 1]],
                             device=x.device)
    to_normalised = torch.tensor([2 / (w - 1), 2 / (h - 1)], device=x.device)
    normalised = to_pixels @ inverse * to_normalised
    normalised[:, 2] -= 1  # the offset row: normalised = pixel * 2 / (size - 1) - 1
    grid = F.affine_grid(normalised.transpose(1, 2), list(x.shape), align_corners=True)
    return _sample(x, grid, align_corners=True)


def elastic_transform(x: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Random affine warp, then a smooth random displacement field of strength alpha.

    The displacement is U(-1, 1) noise blurred with a Gaussian of std sigma, times alpha, per
    axis; both warps interpolate bilinearly with mirrored borders as the reference does.
    """
    n, _, h, w = x.shape
    scale = min(h, w) * (1.0 if max(h, w) <= 64 else 244 / 224)
    alpha, sigma, affine = (scale * k for k in params_for(x, severity, ELASTIC_ALPHA_SIGMA_AFFINE))
    x = _random_affine(x, affine, generator)
    if alpha > 0:
        # alpha * blur(2u - 1) in normalised units: the blur keeps constants, so that is
        # (4 alpha / size) * blur(u) - 2 alpha / size per axis (x, y)
        per_pixel = torch.tensor([2 / w, 2 / h], device=x.device) * alpha
        identity = torch.eye(2, 3, device=x.device)[None]
        grid = F.affine_grid(identity, [1, 1, h, w], align_corners=False) - per_pixel
        noise = torch.rand((n, h, w, 2), generator=generator, device=x.device)
        grid = torch.addcmul(grid, _gaussian_blur(noise, sigma), 2 * per_pixel)
        x = _sample(x, grid, align_corners=False)
    return _to_255(x)


CORRUPTIONS = {
    "brightness": brightness,
    "contrast": contrast,
    "saturate": saturate,
    "elastic_transform": elastic_transform,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
}
