"""JSON documents checked against the dataclass that declares them (``run.json``: RunSettings; a
model file's spec: ModelSpec), so that an edited or damaged file is named by field, not met later
as a TypeError deep inside a command."""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any


def field_problem(document: Mapping[str, Any], declaration: type) -> str | None:
    """``name must be T, got V`` for the first field of ``declaration`` (a dataclass) that
    ``document`` holds with a value of another type; None when every field it holds fits."""
    hints = typing.get_type_hints(declaration)
    for field in dataclasses.fields(declaration):
        if field.name in document and not conforms(document[field.name], hints[field.name]):
            return f"{field.name} must be {_type_text(hints[field.name])}, got {document[field.name]!r}"
    return None


def conforms(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a declared type (JSON has lists for tuples, numbers for floats)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(conforms(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, list | tuple) and all(conforms(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, int | float)
    return isinstance(value, hint)


def _type_text(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint)
