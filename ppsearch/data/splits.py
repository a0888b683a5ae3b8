"""The held-out validation split a search selects on: a stratified draw from the training split.

Selection (every value an optimiser or a scheduler sees) and reporting (the test split) never use
the same images; the validation images are never trained on.
"""
from __future__ import annotations

import math
from fractions import Fraction

import torch

from ..errors import UserError

MAX_VALIDATION_FRACTION = 0.5


def check_validation_fraction(fraction: float, where: str) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= MAX_VALIDATION_FRACTION:
        raise UserError(f"{where}: the validation fraction must be in (0, {MAX_VALIDATION_FRACTION}], got {fraction!r}")
    return float(fraction)


def validation_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training indices, validation indices) of a training split with ``labels``: from every class,
    ``round(fraction * its count)`` images drawn at random from ``seed`` are held out. Both index
    tensors are sorted, so the training images keep the dataset's order."""
    check_validation_fraction(fraction, "validation split")
    classes, counts = torch.unique(labels, return_counts=True)
    fewest = int(counts.min())
    # round() is monotone in the count, so the smallest class is the first left without a validation
    # image. None is left without a training image: with a fraction <= 0.5, round(fraction * n) is at
    # most n - 1 for n >= 2 (round(1.5) = 2 of 3 is the tightest), and 0 for n = 1.
    if round(fraction * fewest) == 0:
        smallest = _smallest_fraction(fewest)
        remedy = (f"no fraction up to {MAX_VALIDATION_FRACTION} holds out a class's only image"
                  if smallest > MAX_VALIDATION_FRACTION else
                  f"the smallest fraction that holds out an image of every class is {smallest:g}")
        raise UserError(f"validation fraction {fraction:g} holds out no image of class "
                        f"{int(classes[counts.argmin()])} ({fewest} training images, the fewest of "
                        f"{len(classes)} classes); {remedy}")
    generator = torch.Generator().manual_seed(seed)
    held_out = []
    for label in classes:
        members = torch.nonzero(labels == label).flatten()
        count = round(fraction * len(members))
        held_out.append(members[torch.randperm(len(members), generator=generator)[:count]])
    validation = torch.sort(torch.cat(held_out)).values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[validation] = False
    return torch.nonzero(keep).flatten(), validation


def _smallest_fraction(count: int) -> float:
    """The smallest validation fraction of three significant digits that holds out an image of a
    class of ``count`` images: ``round(fraction * count)`` is 1 only above half an image. Exact
    arithmetic, so that a bound such as 0.5/5000 = 1e-4 (which holds out none) is not suggested."""
    bound = Fraction(1, 2 * count)
    scale = 10 ** (2 - math.floor(math.log10(bound)))
    return float((math.floor(bound * scale) + 1) / Fraction(scale))
