"""A trained model in one file (safetensors weights plus the configuration that rebuilds it), and
training checkpoints that resume a run exactly."""
from __future__ import annotations

import base64
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import torch
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


# ------------------------------------------------------------------ training checkpoints
# A training checkpoint is a directory: model.safetensors (the model file above, so `ppsearch eval`
# reads it), optimizer.safetensors (the optimiser's tensors) and state.json (everything else: the
# trial's configuration, epochs done, optimiser hyper-parameters, RNG states). It is written beside
# the old one and swapped in, so an interruption at any moment leaves one complete checkpoint.

def save_training_checkpoint(directory: str | Path, model: nn.Module, spec: ModelSpec,
                             optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> Path:
    directory = Path(directory)
    partial, old = directory.with_name(directory.name + ".partial"), directory.with_name(directory.name + ".old")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_model(partial / "model.safetensors", model, spec)
    tensors, optimizer_state = _split_optimizer_state(optimizer.state_dict())
    save_file(tensors, str(partial / "optimizer.safetensors"))
    rng = {"torch": _encode(torch.get_rng_state())}
    if torch.cuda.is_available():
        rng["cuda"] = [_encode(s) for s in torch.cuda.get_rng_state_all()]
    (partial / "state.json").write_text(json.dumps({**state, "optimizer": optimizer_state, "rng": rng}, indent=1))
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    partial.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def load_training_checkpoint(directory: str | Path, model: nn.Module,
                             optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """Restore the model, optimiser and RNG states saved in ``directory`` and return the saved
    state, or None when there is no checkpoint (a crash between the two renames of a save leaves
    the previous checkpoint under ``<directory>.old``, which is used then)."""
    directory = Path(directory)
    if not (directory / "state.json").is_file():
        directory = directory.with_name(directory.name + ".old")
        if not (directory / "state.json").is_file():
            return None
    state = json.loads((directory / "state.json").read_text())
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    optimizer.load_state_dict(_join_optimizer_state(load_file(str(directory / "optimizer.safetensors")),
                                                    state.pop("optimizer")))
    rng = state.pop("rng")
    torch.set_rng_state(_decode(rng["torch"]))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_decode(s) for s in rng["cuda"]])
    return state


def _split_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"scalars": scalars, "param_groups": state_dict["param_groups"]}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], saved: dict) -> dict:
    state: dict[int, dict] = {int(i): dict(v) for i, v in saved["scalars"].items()}
    for name, tensor in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = tensor
    return {"state": state, "param_groups": saved["param_groups"]}


def _encode(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode()


def _decode(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)
