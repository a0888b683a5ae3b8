"""A trained model in one file: safetensors weights plus the specification that rebuilds it
(architecture, design, input channels, classes, dataset and normalisation)."""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file

from .. import __version__
from ..config import check_design
from ..data.names import DATASETS
from ..declared import field_problem
from ..errors import UserError
from ..files import atomic_path
from . import architecture_problem, build_model
from .seed_layout import SEED_CODE_ARCHITECTURES, SEED_CODE_NORMALISATION, load_seed_state
from .weights import load_weights, read_weights

METADATA_KEY = "ppsearch"
SEED_CODE_DATASETS = {10: "cifar10", 100: "cifar100"}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model and feed it images."""

    arch: str
    design: dict[str, Any]
    in_chans: int
    num_classes: int
    dataset: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def build(self) -> nn.Module:
        return build_model(self.arch, in_chans=self.in_chans, num_classes=self.num_classes, **self.design)


def save_model(path: str | Path, model: nn.Module, spec: ModelSpec) -> Path:
    """Write ``model``'s weights and ``spec`` to ``path`` (write, then rename: never half a file)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {METADATA_KEY: json.dumps({**dataclasses.asdict(spec), "version": __version__})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def written_by_ppsearch(path: str | Path) -> bool:
    """Whether ``path`` is a safetensors file carrying ppsearch's specification; a file that is not
    (plain weights, a torch checkpoint, a missing file) is left to the reader that loads it to name."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return METADATA_KEY in (f.metadata() or {})
    except (SafetensorError, OSError):
        return False


def read_spec(path: str | Path) -> ModelSpec:
    """The specification in the model file at ``path``, every field checked against
    :class:`ModelSpec`'s declared type and against what a model can be built and fed with: a
    problem is a UserError naming the file, the field, what it must be and the value."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError) as error:
        raise UserError(f"checkpoint {path} is not a readable safetensors file: {error}") from None
    if raw is None:
        raise UserError(f"checkpoint {path} has no ppsearch configuration (not written by ppsearch)")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise UserError(f"checkpoint {path} has damaged ppsearch metadata ({type(error).__name__}: {error})") from None
    if not isinstance(data, dict):
        raise UserError(f"checkpoint {path} has damaged ppsearch metadata (not a JSON object: {data!r})")
    for field in dataclasses.fields(ModelSpec):
        if field.name not in data:
            raise UserError(f"checkpoint {path} has damaged ppsearch metadata (it lacks {field.name})")
    problem = field_problem(data, ModelSpec)
    if problem:
        raise UserError(f"checkpoint {path}: {problem}")
    # JSON has lists for tuples
    spec = ModelSpec(**{f.name: tuple(v) if isinstance(v := data[f.name], list) else v
                        for f in dataclasses.fields(ModelSpec)})
    problem = _spec_problem(spec)
    if problem:
        raise UserError(f"checkpoint {path}: {problem}")
    return spec


def _spec_problem(spec: ModelSpec) -> str | None:
    """Why a spec of the declared types still builds no model or feeds it no images, or None."""
    problem = architecture_problem(spec.arch)
    if problem:
        return f"arch: {problem}"
    try:
        check_design(spec.design)
    except UserError as error:
        return f"design: {error}"
    if spec.in_chans < 1:
        return f"in_chans must be >= 1, got {spec.in_chans}"
    if spec.num_classes < 2:
        return f"num_classes must be >= 2, got {spec.num_classes}"
    if spec.dataset not in DATASETS:
        return f"dataset must be one of {', '.join(DATASETS)}, got {spec.dataset!r}"
    # images are normalised channel by channel, divided by std
    if len(spec.mean) != spec.in_chans or not all(map(math.isfinite, spec.mean)):
        return f"mean must hold a finite number per input channel (in_chans {spec.in_chans}), got {list(spec.mean)}"
    if len(spec.std) != spec.in_chans or not all(math.isfinite(s) and s > 0 for s in spec.std):
        return f"std must hold a finite number > 0 per input channel (in_chans {spec.in_chans}), got {list(spec.std)}"
    return None


def load_model(path: str | Path, arch: str | None = None, **design: Any) -> nn.Module:
    """The model stored at ``path``, in eval mode, its :class:`ModelSpec` as ``model.ppsearch_spec``.

    ``path`` is a ppsearch model file (architecture and design from its specification; give neither)
    or a checkpoint of the seed paper's code (``.pth``/``.pth.tar`` holding ``state_dict``) of a CIFAR
    ResNet or DenseNet-BC: then give ``arch`` and the design it was trained with, e.g.
    ``load_model("model_best.pth.tar", arch="resnet20", placement="pp")``. Only tensors are read
    (``torch.load(weights_only=True)``); a tensor that does not fit is named in the error.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        if arch is not None or design:
            raise UserError(f"{path} is a ppsearch model file: its architecture and design are stored in it; "
                            f"give neither arch nor design keys")
        spec = read_spec(path)
        source = f"checkpoint {path}"
        try:
            model = spec.build()
        except UserError as error:  # a design the architecture cannot take (e.g. a blur timm has no hook for)
            raise UserError(f"{source}: {error}") from None
        state = read_weights(path)
        load_weights(model, state, source)
    else:
        if arch is None:
            raise UserError(f"checkpoint {path} is not a ppsearch model file: name its architecture "
                            f"(arch=..., --arch) and the design it was trained with")
        model, spec = _load_seed_checkpoint(path, arch, design)
    model.ppsearch_spec = spec  # as timm attaches pretrained_cfg
    return model.eval()


def _load_seed_checkpoint(path: Path, arch: str, design: dict[str, Any]) -> tuple[nn.Module, ModelSpec]:
    design = check_design({"antialias_position": "block_input", **design})
    if design.antialias != "none" and design.antialias_position != "block_input":
        raise UserError("the seed code blurs the strided block's input (antialias_position=block_input); "
                        f"it has no checkpoints with antialias_position={design.antialias_position}")
    problem = architecture_problem(arch)
    if problem:
        raise UserError(problem)
    state = read_weights(path)
    source = f"checkpoint {path}"
    classifier = next((v for k, v in state.items() if re.search(r"(^|\.)(fc|classifier)\.weight$", k)), None)
    if classifier is None or classifier.dim() != 2:
        raise UserError(f"{source} has no classifier weight (fc.weight or classifier.weight): not a checkpoint "
                        f"of the seed code's CIFAR models")
    num_classes = classifier.shape[0]
    if num_classes not in SEED_CODE_DATASETS:
        raise UserError(f"{source} has {num_classes} classes; the seed code trains CIFAR-10 and CIFAR-100 only")
    spec = ModelSpec(arch, design.to_dict(), 3, num_classes, SEED_CODE_DATASETS[num_classes],
                     *SEED_CODE_NORMALISATION)
    model = spec.build()
    if not isinstance(model, SEED_CODE_ARCHITECTURES):
        raise UserError(f"the seed code has checkpoints of CIFAR ResNets and DenseNet-BC, not {arch}; for other "
                        f"architectures write a ppsearch model file with `ppsearch apply`")
    load_seed_state(model, state, source)
    return model, spec
