"""The held-out validation split a search selects on: a stratified draw from the training split.

Selection (every value an optimiser or a scheduler sees) and reporting (the test split) never use
the same images; the validation images are never trained on.
"""
from __future__ import annotations

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
    generator = torch.Generator().manual_seed(seed)
    held_out = []
    for label in torch.unique(labels):
        members = torch.nonzero(labels == label).flatten()
        count = round(fraction * len(members))
        held_out.append(members[torch.randperm(len(members), generator=generator)[:count]])
    validation = torch.sort(torch.cat(held_out)).values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[validation] = False
    return torch.nonzero(keep).flatten(), validation
