"""Carry a picked configuration to another architecture (``ppsearch apply``): build the plain
model, load its trained weights, put push-pull in by surgery (which keeps them as push kernels)."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch.nn as nn

from ..config import DESIGN_KEYS, Design, check_config
from ..data.datasets import IMAGENET_SIZE, native_image_size
from ..data.names import DATASET_CLASSES, IMAGENET
from ..data.preprocess import DATASET_STATS, normalisation
from ..errors import UserError
from . import antialias_problem, architecture_problem, build_model, default_image_size, input_problem
from .model_file import ModelSpec, read_spec, written_by_ppsearch
from .surgery import Change, pushpullify
from .weights import load_weights, read_weights


@dataclasses.dataclass(frozen=True)
class AppliedDesign:
    model: nn.Module
    spec: ModelSpec
    changes: list[Change]
    antialias_left_out: str | None  # why the design's anti-aliasing is not in the model (None: it is, or none asked)


def apply_design(config: Mapping[str, Any], arch: str, *, checkpoint: str | Path | None = None, in_chans: int = 3,
                 num_classes: int | None = None, dataset: str | None = None) -> AppliedDesign:
    """``arch`` with the design of ``config`` (a picked configuration: design keys, and model keys
    that are ignored), with the plain model's weights from ``checkpoint`` where given (without them
    the weights are random). A model that cannot take ``dataset``'s images (their channels, or their
    size in one forward pass) is refused; ``dataset`` None: see :func:`model_dataset`. ``num_classes``
    None: those of a ppsearch model file given as ``checkpoint``, else ``dataset``'s."""
    design = Design.from_mapping(check_config(config))
    if not any(k in config for k in DESIGN_KEYS):
        raise UserError(f"the configuration holds no design key ({', '.join(DESIGN_KEYS)}): nothing to apply")
    problem = architecture_problem(arch)
    if problem:
        raise UserError(problem)
    weights = read_weights(Path(checkpoint)) if checkpoint is not None else None  # a file that is not weights: named first
    dataset = dataset or model_dataset(arch, checkpoint)
    if dataset not in DATASET_STATS:
        raise UserError(f"dataset {dataset!r}: allowed: {', '.join(DATASET_STATS)}")
    channels = len(DATASET_STATS[dataset][0])
    if num_classes is None:
        ppsearch_file = checkpoint is not None and written_by_ppsearch(checkpoint)
        num_classes = read_spec(checkpoint).num_classes if ppsearch_file else DATASET_CLASSES[dataset]
    # eval feeds a model its dataset's images, grey ones also as RGB (the -C/-P sets are RGB)
    if in_chans not in (channels, 3):
        fits = " or ".join(map(str, sorted({channels, 3})))
        raise UserError(f"in_chans {in_chans} does not fit {dataset}'s {channels}-channel images: a model for "
                        f"{dataset} takes {fits} input channels")
    left_out = antialias_problem(arch, design.antialias_position) if design.antialias != "none" else None
    if left_out:
        design = dataclasses.replace(design, antialias="none")
    plain = build_model(arch, in_chans=in_chans, num_classes=num_classes, antialias=design.antialias,
                        antialias_position=design.antialias_position)
    problem = input_problem(plain, arch, in_chans, native_image_size(dataset))
    if problem:
        raise UserError(problem)
    if weights is not None:  # trained weights of the plain model go in before the surgery, which keeps them
        load_weights(plain, weights, f"checkpoint {checkpoint}")
    changes = pushpullify(plain, dataclasses.replace(design, antialias="none"))
    mean, std = normalisation(dataset, in_chans)
    return AppliedDesign(plain, ModelSpec(arch, design.to_dict(), in_chans, num_classes, dataset, mean, std),
                         changes, left_out)


def model_dataset(arch: str, checkpoint: str | Path | None) -> str:
    """The data a model is for when it is not named: the dataset a ppsearch model file given as
    ``checkpoint`` was trained on (a trial's model file of the design's run), else imagenet for an
    ImageNet-size architecture. A CIFAR-size one may be for any of the small datasets: it must be
    named, or the model would be recorded, normalised and evaluated as another dataset's."""
    if checkpoint is not None and written_by_ppsearch(checkpoint):
        return read_spec(checkpoint).dataset
    if default_image_size(arch) == IMAGENET_SIZE:
        return IMAGENET
    small = [name for name in DATASET_STATS if name != IMAGENET]
    raise UserError(f"{arch} is a CIFAR-size model: name the data it is for with --dataset ({', '.join(small)}), "
                    f"or give a ppsearch model file of that data as --checkpoint")
