"""Carry a picked configuration to another architecture (``ppsearch apply``): build the plain
model, load its trained weights, put push-pull in by surgery (which keeps them as push kernels)."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch.nn as nn

from ..config import DESIGN_KEYS, Design, check_config
from ..data.datasets import native_image_size
from ..data.preprocess import DATASET_STATS, normalisation
from ..errors import UserError
from . import architecture_problem, build_model, input_problem, supports_antialias
from .model_file import ModelSpec
from .surgery import Change, pushpullify
from .weights import load_weights, read_weights


@dataclasses.dataclass(frozen=True)
class AppliedDesign:
    model: nn.Module
    spec: ModelSpec
    changes: list[Change]
    antialias_left_out: bool  # the design asked for anti-aliasing that the architecture has no hook for


def apply_design(config: Mapping[str, Any], arch: str, *, checkpoint: str | Path | None = None, in_chans: int = 3,
                 num_classes: int = 1000, dataset: str = "imagenet") -> AppliedDesign:
    """``arch`` with the design of ``config`` (a picked configuration: design keys, and model keys
    that are ignored), with the plain model's weights from ``checkpoint`` where given. A model that
    cannot take ``dataset``'s images (their channels, or their size in one forward pass) is refused."""
    design = Design.from_mapping(check_config(config))
    if not any(k in config for k in DESIGN_KEYS):
        raise UserError(f"the configuration holds no design key ({', '.join(DESIGN_KEYS)}): nothing to apply")
    problem = architecture_problem(arch)
    if problem:
        raise UserError(problem)
    if dataset not in DATASET_STATS:
        raise UserError(f"dataset {dataset!r}: allowed: {', '.join(DATASET_STATS)}")
    channels = len(DATASET_STATS[dataset][0])
    # eval feeds a model its dataset's images, grey ones also as RGB (the -C/-P sets are RGB)
    if in_chans not in (channels, 3):
        fits = " or ".join(map(str, sorted({channels, 3})))
        raise UserError(f"in_chans {in_chans} does not fit {dataset}'s {channels}-channel images: a model for "
                        f"{dataset} takes {fits} input channels")
    left_out = design.antialias != "none" and not supports_antialias(arch, design.antialias_position)
    if left_out:
        design = dataclasses.replace(design, antialias="none")
    plain = build_model(arch, in_chans=in_chans, num_classes=num_classes, antialias=design.antialias,
                        antialias_position=design.antialias_position)
    problem = input_problem(plain, arch, in_chans, native_image_size(dataset))
    if problem:
        raise UserError(problem)
    if checkpoint is not None:  # trained weights of the plain model go in before the surgery, which keeps them
        load_weights(plain, read_weights(Path(checkpoint)), f"checkpoint {checkpoint}")
    changes = pushpullify(plain, dataclasses.replace(design, antialias="none"))
    mean, std = normalisation(dataset, in_chans)
    return AppliedDesign(plain, ModelSpec(arch, design.to_dict(), in_chans, num_classes, dataset, mean, std),
                         changes, left_out)
