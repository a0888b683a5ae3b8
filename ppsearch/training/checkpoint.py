"""Training checkpoints that resume a run exactly.

A training checkpoint is a directory: model.safetensors (a model file, so `ppsearch eval` reads it),
optimizer.safetensors (the optimiser's tensors) and state.json (everything else: the trial's
configuration, epochs done, optimiser hyper-parameters, RNG states). It is written beside the old
one and swapped in, so an interruption at any moment leaves one complete checkpoint.
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from ..files import atomic_directory, previous_directory, read_json, write_json
from ..models.model_file import ModelSpec, save_model


def save_training_checkpoint(directory: str | Path, model: nn.Module, spec: ModelSpec,
                             optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> Path:
    rng = {"torch": _encode(torch.get_rng_state())}
    if torch.cuda.is_available():
        rng["cuda"] = [_encode(s) for s in torch.cuda.get_rng_state_all()]
    tensors, optimizer_state = _split_optimizer_state(optimizer.state_dict())
    with atomic_directory(directory) as partial:
        save_model(partial / "model.safetensors", model, spec)
        save_file(tensors, str(partial / "optimizer.safetensors"))
        write_json(partial / "state.json", {**state, "optimizer": optimizer_state, "rng": rng})
    return Path(directory)


def load_training_checkpoint(directory: str | Path, model: nn.Module,
                             optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """Restore the model, optimiser and RNG states saved in ``directory`` and return the saved
    state, or None when there is no checkpoint (a crash between the two renames of a save leaves
    the previous checkpoint under ``<directory>.old``, which is used then)."""
    directory = _complete_checkpoint(directory)
    if directory is None:
        return None
    state = read_json(directory / "state.json")
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    optimizer.load_state_dict(_join_optimizer_state(load_file(str(directory / "optimizer.safetensors")),
                                                    state.pop("optimizer")))
    rng = state.pop("rng")
    torch.set_rng_state(_decode(rng["torch"]))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_decode(s) for s in rng["cuda"]])
    return state


def read_training_state(directory: str | Path) -> dict[str, Any] | None:
    """The state saved with the checkpoint in ``directory`` (its epochs' reports under ``history``),
    read without restoring anything; None when there is no checkpoint."""
    directory = _complete_checkpoint(directory)
    return None if directory is None else read_json(directory / "state.json")


def _complete_checkpoint(directory: str | Path) -> Path | None:
    """Where the complete checkpoint saved in ``directory`` is: there, or under ``<directory>.old``
    (a crash between the two renames of a save leaves the previous one there); None without one."""
    for candidate in (Path(directory), previous_directory(Path(directory))):
        if (candidate / "state.json").is_file():
            return candidate
    return None


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
