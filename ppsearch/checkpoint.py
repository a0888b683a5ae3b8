"""A trained model in one file: safetensors weights plus the configuration that rebuilds it."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from . import __version__
from .design import Design
from .models import build_model

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {METADATA_KEY: json.dumps({**dataclasses.asdict(spec), "version": __version__})}
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def read_spec(path: str | Path) -> ModelSpec:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError) as error:
        raise ValueError(f"checkpoint {path} is not a readable safetensors file: {error}") from None
    if raw is None:
        raise ValueError(f"checkpoint {path} has no ppsearch configuration (not written by ppsearch)")
    fields = {f.name for f in dataclasses.fields(ModelSpec)}
    data = json.loads(raw)
    spec = ModelSpec(**{k: v for k, v in data.items() if k in fields})
    Design.from_dict(spec.design)
    return spec


def load_model(path: str | Path) -> tuple[nn.Module, ModelSpec]:
    """Rebuild the model saved at ``path`` and load its weights."""
    spec = read_spec(path)
    model = spec.build()
    try:
        model.load_state_dict(load_file(str(path)))
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise ValueError(f"checkpoint {path} does not match its configuration: {first}") from None
    return model, spec
