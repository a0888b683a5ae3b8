"""Weights from files: the tensors of a safetensors file or a torch checkpoint, read without
unpickling code, and loaded into a model by name with the first misfit named."""
from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import UserError


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file or of a torch checkpoint (its ``state_dict`` where it has one),
    read without unpickling anything but tensors and plain containers."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except (OSError, SafetensorError) as error:
            raise UserError(f"checkpoint {path} is not a readable safetensors file: {error}") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code
        except pickle.UnpicklingError as error:
            code = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
            if code is None:
                raise UserError(f"checkpoint {path} is not a torch checkpoint (unreadable pickle)") from None
            raise UserError(f"checkpoint {path} holds a Python object ({code[1]}) besides tensors; ppsearch loads "
                            f"only tensors (torch.load weights_only=True): save the state dict alone") from None
        except Exception as error:  # noqa: BLE001 - torch's unpickler raises any type on a file that is no checkpoint
            raise UserError(f"checkpoint {path} is not a torch checkpoint ({type(error).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"checkpoint {path} holds no state dict of tensors")
    return state


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str,
                 file_names: Mapping[str, str] | None = None) -> None:
    """Load ``state`` into ``model``; a tensor that is missing, extra, of another shape, of another
    dtype (``load_state_dict`` would convert it silently, float16 or int8 included) or not finite
    (NaN or inf weights evaluate to meaningless errors, not to a failure) is a UserError naming it
    (``source`` says where the weights came from; ``file_names`` gives a renamed tensor's name in the
    file, which the message names too)."""
    expected = model.state_dict()
    kind = type(model).__name__

    def named(name: str) -> str:
        original = (file_names or {}).get(name, name)
        return repr(name) if original == name else f"{original!r} (ppsearch: {name!r})"

    for name, tensor in expected.items():
        if name not in state:
            raise UserError(f"{source} lacks tensor {name!r} {tuple(tensor.shape)} that {kind} needs")
        given = state[name]
        if tuple(given.shape) != tuple(tensor.shape):
            raise UserError(f"{source}: tensor {named(name)} has shape {tuple(given.shape)}, {kind} expects "
                            f"{tuple(tensor.shape)}")
        if given.dtype != tensor.dtype:
            raise UserError(f"{source}: tensor {named(name)} is {_dtype_name(given)}, the model's is "
                            f"{_dtype_name(tensor)}")
        if given.is_floating_point() and not given.isfinite().all():
            raise UserError(f"{source}: tensor {named(name)} holds {'NaN' if given.isnan().any() else 'inf'}")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise UserError(f"{source} holds tensor {named(extra[0])}, which {kind} does not have")
    model.load_state_dict(state)


def _dtype_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")
