"""A trained model in one file: safetensors weights plus the specification that rebuilds it
(architecture, design, input channels, classes, dataset and normalisation)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from .. import __version__
from ..config import Design
from ..errors import UserError
from ..files import atomic_path
from . import build_model

METADATA_KEY = "ppsearch"


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


def read_spec(path: str | Path) -> ModelSpec:
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
    fields = {f.name for f in dataclasses.fields(ModelSpec) if f.default is dataclasses.MISSING}
    try:
        data = json.loads(raw)
        spec = ModelSpec(**{k: data[k] for k in fields})
    except (json.JSONDecodeError, TypeError, KeyError) as error:
        raise UserError(f"checkpoint {path} has damaged ppsearch metadata ({type(error).__name__}: {error})") from None
    Design.from_dict(spec.design)
    return spec


def load_model(path: str | Path) -> tuple[nn.Module, ModelSpec]:
    """Rebuild the model saved at ``path`` and load its weights."""
    spec = read_spec(path)
    model = spec.build()
    load_weights(model, load_file(str(path)), f"checkpoint {path}")
    return model, spec


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model``; a tensor that is missing, extra or of another shape is a
    UserError naming it (``source`` says where the weights came from)."""
    expected = model.state_dict()
    kind = type(model).__name__
    for name, tensor in expected.items():
        if name not in state:
            raise UserError(f"{source} lacks tensor {name!r} {tuple(tensor.shape)} that {kind} needs")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise UserError(f"{source}: tensor {name!r} has shape {tuple(state[name].shape)}, {kind} expects "
                            f"{tuple(tensor.shape)}")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise UserError(f"{source} holds tensor {extra[0]!r}, which {kind} does not have")
    model.load_state_dict(state)
