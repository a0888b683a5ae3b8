"""Batched training augmentations for uint8 (N, H, W, C) image tensors, run where the images live.

The fast trainer keeps its training set on the device and augments whole batches there.
Every image draws its own random parameters; nothing loops over the images of a batch.

* ``standard``: 4-pixel zero padding, a random crop back to the input size and a horizontal
  flip with probability 1/2 (the light augmentation of the CIFAR ResNet papers), as one gather
  from the windows of the padded batch and of its mirror image.
* ``cutout``: standard, then Cutout (DeVries & Taylor, 2017): one 16x16 square per image, its
  centre uniform over the image, clipped at the borders, set to 0. DeVries & Taylor cut out
  after normalisation, so their square holds the dataset mean; on uint8 images it is black.
* ``autoaugment``: standard, then AutoAugment (Cubuk et al., 2019) with the CIFAR-10 policy,
  using torchvision's policy table, 10 magnitude bins and op semantics (nearest interpolation,
  fill 0). Each image draws one of the 25 sub-policies, whether each of its two ops fires and
  the sign of signed magnitudes.
* ``autoaugment+cutout``: standard, AutoAugment, then Cutout (the order of the AutoAugment paper).
* ``augmix``: standard, then AugMix (Hendrycks et al., 2020): 3 chains of 1-3 ops each, drawn
  from the ops that do not overlap the -C corruptions (no brightness, colour, contrast or
  sharpness), severity 3, mixed with Dirichlet(1, 1, 1) weights and blended with the input by a
  Beta(1, 1) weight, then rounded to uint8 (torchvision truncates). Magnitudes follow
  torchvision's AugMix (bins 0..severity-1 of 10, bilinear interpolation) rather than the paper
  code's continuous levels, so that images sharing an op and a magnitude can be transformed as
  one group. Only the mixed image is produced: the Jensen-Shannon consistency loss is the
  trainer's. As in the paper's code, it takes the three views from one crop:
  ``x = random_crop_flip(images, g)``, then ``x``, ``augmix(x, g)`` and ``augmix(x, g)``.

AutoAugment and AugMix loop over the distinct (op, magnitude) pairs present in a batch (a few
dozen at most) and apply ``torchvision.transforms.v2.functional`` to the images that drew each
pair, as one batch. On 1-channel images these ops keep torchvision's meaning: ``Color``
(saturation) is the identity, ``Contrast`` blends with the image's own mean; the others are
per-channel and need no change.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from ..config import KEYS
from ..errors import UserError

PADDING = 4
CUTOUT_SIZE = 16

_NUM_BINS = 10  # magnitude levels of AutoAugment and AugMix
_AUGMIX_SEVERITY = 3  # draws from the first 3 of the 10 bins
_AUGMIX_WIDTH = 3
_AUGMIX_MAX_DEPTH = 3

# (op, probability, magnitude bin) pairs of the CIFAR-10 policy (Cubuk et al., 2019, table in
# torchvision's AutoAugment).
_CIFAR10_POLICY = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)

# Magnitude at bin 0 and bin 9 (linear in between); translations as a fraction of the image size,
# Posterize in bits, Solarize as a fraction of 255. Ops without a range take no magnitude.
_AUTOAUGMENT_RANGES = {
    "ShearX": (0.0, 0.3), "ShearY": (0.0, 0.3),
    "TranslateX": (0.0, 150 / 331), "TranslateY": (0.0, 150 / 331),
    "Rotate": (0.0, 30.0),
    "Brightness": (0.0, 0.9), "Color": (0.0, 0.9), "Contrast": (0.0, 0.9), "Sharpness": (0.0, 0.9),
    "Posterize": (8.0, 4.0), "Solarize": (1.0, 0.0),
}
_AUGMIX_RANGES = {
    "ShearX": (0.0, 0.3), "ShearY": (0.0, 0.3),
    "TranslateX": (0.0, 1 / 3), "TranslateY": (0.0, 1 / 3),
    "Rotate": (0.0, 30.0),
    "Posterize": (4.0, 0.0), "Solarize": (1.0, 0.0),
}
_AUGMIX_OPS = ("AutoContrast", "Equalize", "Posterize", "Rotate", "Solarize",
               "ShearX", "ShearY", "TranslateX", "TranslateY")
_SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
           "Brightness", "Color", "Contrast", "Sharpness"}

Op = Callable[[torch.Tensor, float, InterpolationMode], torch.Tensor]


def _shear(x: torch.Tensor, degrees_xy: tuple[float, float], mode: InterpolationMode) -> torch.Tensor:
    # Shear about the top-left corner, as PIL's affine transform in the original AutoAugment does.
    return F.affine(x, angle=0.0, translate=[0, 0], scale=1.0, shear=list(degrees_xy),
                    interpolation=mode, center=[0, 0])


def _translate(x: torch.Tensor, pixels_xy: tuple[int, int], mode: InterpolationMode) -> torch.Tensor:
    return F.affine(x, angle=0.0, translate=list(pixels_xy), scale=1.0, shear=[0.0, 0.0], interpolation=mode)


# Every op takes a uint8 (n, C, H, W) batch, one signed magnitude and the interpolation mode.
_OPS: dict[str, Op] = {
    "ShearX": lambda x, m, mode: _shear(x, (math.degrees(math.atan(m)), 0.0), mode),
    "ShearY": lambda x, m, mode: _shear(x, (0.0, math.degrees(math.atan(m))), mode),
    "TranslateX": lambda x, m, mode: _translate(x, (int(m * x.shape[-1]), 0), mode),
    "TranslateY": lambda x, m, mode: _translate(x, (0, int(m * x.shape[-2])), mode),
    "Rotate": lambda x, m, mode: F.rotate(x, angle=m, interpolation=mode),
    "Brightness": lambda x, m, mode: F.adjust_brightness(x, 1.0 + m),
    "Color": lambda x, m, mode: F.adjust_saturation(x, 1.0 + m),
    "Contrast": lambda x, m, mode: F.adjust_contrast(x, 1.0 + m),
    "Sharpness": lambda x, m, mode: F.adjust_sharpness(x, 1.0 + m),
    "Posterize": lambda x, m, mode: F.posterize(x, bits=round(m)),
    "Solarize": lambda x, m, mode: F.solarize(x, threshold=255.0 * m),
    "AutoContrast": lambda x, m, mode: F.autocontrast(x),
    "Equalize": lambda x, m, mode: F.equalize(x),
    "Invert": lambda x, m, mode: F.invert(x),
}

Action = tuple[str, float]  # (op, signed magnitude)


def _signed_actions(op: str, level: int | None, ranges: dict[str, tuple[float, float]]) -> tuple[Action, Action]:
    """``op`` at magnitude bin ``level``, with a positive and with a negative sign (the same for unsigned ops)."""
    magnitude = 0.0
    if op in ranges:
        # float32 bins as in torchvision, so that blends truncate to the same uint8 values.
        magnitude = torch.linspace(*ranges[op], _NUM_BINS)[level].item()
    return (op, magnitude), (op, -magnitude if op in _SIGNED else magnitude)


def _action_table(grid: list[list[tuple[str, int | None]]],
                  ranges: dict[str, tuple[float, float]]) -> tuple[list[Action], torch.Tensor]:
    """Number the distinct actions of a grid of (op, level) entries, so images can draw them as integers.

    Returns the actions and an int64 tensor of shape (rows, columns, 2) holding the number of each
    entry's action with a positive and with a negative sign.
    """
    signed = [[_signed_actions(op, level, ranges) for op, level in row] for row in grid]
    actions = list(dict.fromkeys(a for row in signed for pair in row for a in pair))
    number = {a: i for i, a in enumerate(actions)}
    return actions, torch.tensor([[[number[a] for a in pair] for pair in row] for row in signed])


_AUTOAUGMENT_ACTIONS, _AUTOAUGMENT_CODES = _action_table(
    [[(op, level) for op, _, level in sub_policy] for sub_policy in _CIFAR10_POLICY], _AUTOAUGMENT_RANGES)
_AUTOAUGMENT_PROBABILITIES = torch.tensor([[p for _, p, _ in sub_policy] for sub_policy in _CIFAR10_POLICY])
_AUGMIX_ACTIONS, _AUGMIX_CODES = _action_table(
    [[(op, level) for level in range(_AUGMIX_SEVERITY)] for op in _AUGMIX_OPS], _AUGMIX_RANGES)


def augment(images: torch.Tensor, name: str, generator: torch.Generator) -> torch.Tensor:
    """Augment a uint8 (N, H, W, C) batch (C = 1 or 3) with augmentation ``name`` (one of :data:`ppsearch.config.AUGMENTATIONS`).

    Returns a uint8 tensor of the same shape on the same device; ``"none"`` returns ``images``
    itself. Every image draws its own parameters from ``generator``, which must live on the
    images' device; the result is a function of the images and the generator's state.
    """
    KEYS["augmentation"].check(name)
    _check_batch(images, generator)
    if name == "none":
        return images
    out = random_crop_flip(images, generator)
    if name.startswith("autoaugment"):
        out = autoaugment(out, generator)
    elif name == "augmix":
        out = augmix(out, generator)
    if name.endswith("cutout"):
        out = cutout(out, generator)
    return out


def _check_batch(images: torch.Tensor, generator: torch.Generator) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 \
            or images.shape[-1] not in (1, 3):
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise UserError(f"images must be a uint8 (N, H, W, C) tensor with C = 1 or 3, got {got}")
    if generator.device.type != images.device.type:
        raise UserError(f"generator is on {generator.device} but images are on {images.device}; "
                         f"they must be on the same device")


def _randint(high: int, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(high, (n,), generator=generator, device=device)


def _rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device)


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = PADDING) -> torch.Tensor:
    """Zero-pad a uint8 (N, H, W, C) batch by ``padding``, crop each image back to H x W at a random
    offset and flip it horizontally with probability 1/2."""
    n, h, w, c = images.shape
    device = images.device
    offsets = 2 * padding + 1
    oy, ox = _randint(offsets, n, generator, device), _randint(offsets, n, generator, device)
    flip = _rand((n,), generator, device) < 0.5
    padded = torch.nn.functional.pad(images, (0, 0, padding, padding, padding, padding))
    # A crop of the flipped padded image at column offset ox is the flipped crop at offset
    # 2 * padding - ox; both offsets are uniform, so one gather does crop and flip.
    sources = torch.cat([padded, padded.flip(2)])
    stride = sources.stride()
    windows = sources.as_strided((2 * n, offsets, offsets, h, w, c),
                                 (stride[0], stride[1], stride[2], stride[1], stride[2], stride[3]))
    return windows[torch.arange(n, device=device) + n * flip, oy, ox]


def cutout(images: torch.Tensor, generator: torch.Generator, size: int = CUTOUT_SIZE) -> torch.Tensor:
    """Set one ``size`` x ``size`` square per image of a uint8 (N, H, W, C) batch to 0; its centre is
    uniform over the image and the square is clipped at the borders."""
    n, h, w, c = images.shape
    device = images.device
    cy, cx = _randint(h, n, generator, device), _randint(w, n, generator, device)
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device).repeat_interleave(c)  # the column of each byte of an image row
    low, high = size // 2, size - size // 2
    in_rows = (rows >= cy[:, None] - low) & (rows < cy[:, None] + high)
    in_cols = (cols >= cx[:, None] - low) & (cols < cx[:, None] + high)
    # A uint8 product is several times faster than a broadcast masked_fill on CPU.
    keep = 1 - in_rows.to(torch.uint8)[:, :, None] * in_cols.to(torch.uint8)[:, None, :]
    return (images.reshape(n, h, w * c) * keep).view(n, h, w, c)


def autoaugment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply the AutoAugment CIFAR-10 policy to a uint8 (N, H, W, C) batch, one sub-policy per image."""
    n, device = images.shape[0], images.device
    codes = _AUTOAUGMENT_CODES.to(device)
    probabilities = _AUTOAUGMENT_PROBABILITIES.to(device)
    sub_policy = _randint(len(_CIFAR10_POLICY), n, generator, device)
    fires = _rand((n, 2), generator, device) <= probabilities[sub_policy]
    negative = (_rand((n, 2), generator, device) <= 0.5).long()
    x = _to_nchw(images)
    for slot in range(2):
        drawn = codes[sub_policy, slot, negative[:, slot]]
        x = _apply_actions(x, drawn.masked_fill(~fires[:, slot], -1), _AUTOAUGMENT_ACTIONS, InterpolationMode.NEAREST)
    return _to_nhwc(x)


def augmix(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply AugMix (without the -C-overlapping ops) to a uint8 (N, H, W, C) batch."""
    n, device = images.shape[0], images.device
    codes = _AUGMIX_CODES.to(device)
    x = _to_nchw(images)
    # With alpha = 1, Beta(1, 1) is uniform and Dirichlet(1, 1, 1) is normalised Exp(1) draws.
    augmented_weight = _rand((n,), generator, device)
    chain_weights = -torch.log1p(-_rand((n, _AUGMIX_WIDTH), generator, device))
    chain_weights = chain_weights / chain_weights.sum(1, keepdim=True) * augmented_weight[:, None]
    mix = x.float().mul_((1 - augmented_weight).view(n, 1, 1, 1))
    for chain in range(_AUGMIX_WIDTH):
        depth = 1 + _randint(_AUGMIX_MAX_DEPTH, n, generator, device)
        aug = x
        for step in range(_AUGMIX_MAX_DEPTH):
            op = _randint(len(_AUGMIX_OPS), n, generator, device)
            level = _randint(_AUGMIX_SEVERITY, n, generator, device)
            negative = (_rand((n,), generator, device) <= 0.5).long()
            drawn = codes[op, level, negative].masked_fill(step >= depth, -1)
            aug = _apply_actions(aug, drawn, _AUGMIX_ACTIONS, InterpolationMode.BILINEAR)
        mix.addcmul_(aug.float(), chain_weights[:, chain].view(n, 1, 1, 1))
    return _to_nhwc(mix.round_().clamp_(0, 255).to(torch.uint8))


def _apply_actions(x: torch.Tensor, drawn: torch.Tensor, actions: list[Action],
                   mode: InterpolationMode) -> torch.Tensor:
    """Apply action ``drawn[i]`` (-1: none) to image ``x[i]`` of a uint8 (N, C, H, W) batch, one
    torchvision call per distinct action present."""
    # Sorting by action groups the images; one host sync for the group sizes, none per group.
    order = torch.argsort(drawn, stable=True)
    sizes = torch.bincount(drawn + 1, minlength=len(actions) + 1).tolist()
    groups = x.index_select(0, order).split(sizes)
    done = [groups[0]] + [_OPS[op](group, magnitude, mode) if len(group) else group
                          for (op, magnitude), group in zip(actions, groups[1:])]
    return torch.cat(done).index_select(0, torch.argsort(order))


# The torchvision ops and the per-group gathers run several times faster on contiguous NCHW.
def _to_nchw(images: torch.Tensor) -> torch.Tensor:
    return images.permute(0, 3, 1, 2).contiguous()


def _to_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous()
