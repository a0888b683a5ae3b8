"""What the command line's flags accept: argparse types that check a value where it enters, and
the design flags read from the configuration schema.

A refusal is "argument --flag: ..." on one line (exit 2) before anything runs: :class:`Parser`
turns argparse's usage-and-error into a :class:`~ppsearch.errors.UserError`.
"""
from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..config import DESIGN_KEYS, KEYS, Design
from ..errors import UserError
from ..rundir import AUTO, check_objectives


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + error; we keep it to one line
        raise UserError(message)


def one_of(noun: str, names: Iterable[str]) -> dict[str, Any]:
    """The ``type`` and ``choices`` of a flag that takes one name of a registry: --help and the
    reference list the names, and a typo is refused in the library's own words ("unknown sampler
    'x'; allowed: ..."), not argparse's list of reprs."""
    allowed = tuple(str(name) for name in names)  # plain strings: StrEnum members would show as reprs

    def parse(text: str) -> str:
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"unknown {noun} {text!r}; allowed: {', '.join(allowed)}")
        return text
    return {"type": parse, "choices": allowed}


def objectives(text: str) -> tuple[str, ...]:
    """A comma-separated list of objectives, each checked against the registry (choices= cannot
    check the elements of a list)."""
    try:
        return check_objectives(tuple(o.strip() for o in text.split(",")), repr(text))
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def constraint(text: str) -> str:
    """A bound on cost (``latency_ms<=4``, ``flops<=1.3x``), checked and written as the run stores it."""
    from ..constraints import parse_constraint

    try:
        return parse_constraint(text).text
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            bounds = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}, got {text!r}")
        return value
    return parse


# numpy's and torch's seeding both take 0 .. 2**32-1 (numpy refuses more, torch wraps it silently)
seed = integer(0, 2**32 - 1)
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``, naming a device this machine has (torch is imported only to
    check a CUDA device)."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be cpu, cuda or cuda:N, got {text!r}")
    if text.startswith("cuda"):
        import torch

        index = int(text.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text}: no such CUDA device here "
                                             f"({torch.cuda.device_count()} available)")
    return text


def real(minimum: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    """A finite number, at least ``minimum`` (greater than it with ``above``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        below = minimum is not None and (value <= minimum if above else value < minimum)
        if not math.isfinite(value) or below:
            bound = "" if minimum is None else f" {'>' if above else '>='} {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number{bound}, got {text!r}")
        return value
    return parse


def validation_fraction(text: str) -> float:
    value = real(0, above=True)(text)
    if value > 0.5:
        raise argparse.ArgumentTypeError(f"must be in (0, 0.5], got {text!r}")
    return value


def alpha(text: str) -> float:
    value = real(0, above=True)(text)
    if value >= 0.5:
        raise argparse.ArgumentTypeError(f"must be in (0, 0.5), got {text!r}")
    return value


def confirm_seeds(text: str) -> str:
    if text != AUTO and not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 or {AUTO}, got {text!r}")
    return text if text == AUTO else str(int(text))


def weights(text: str) -> list[float]:
    try:
        values = [float(w) for w in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(w) and w >= 0 for w in values) or not any(values):
        raise argparse.ArgumentTypeError(f"must be comma-separated finite numbers >= 0, not all 0, got {text!r}")
    return values


_VALUE_LIKE_AN_OPTION = re.compile(r"-[\d.]")  # "-1,1,1": argparse would take it for an option


def attach_option_values(argv: Sequence[str]) -> list[str]:
    """``--flag -1,2`` as ``--flag=-1,2``: argparse reads a value that starts with a minus sign and
    is not a plain number as a new option."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _VALUE_LIKE_AN_OPTION.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def add_design_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per design key of the configuration schema (``--pull-kernel-size`` ...); a key with a
    closed set of names offers them as choices. Values are parsed by :func:`design_from_args`."""
    for name in DESIGN_KEYS:
        key = KEYS[name]
        flag = "--" + name.replace("_", "-")
        if key.types == (bool,):
            parser.add_argument(flag, action="store_true", help=key.allowed)
        elif key.types == (str,) and key.choices:
            parser.add_argument(flag, default=None, help=f"{key.allowed} (default: {key.default})",
                                **one_of(name, key.choices))
        else:
            parser.add_argument(flag, type=str, default=None, help=f"{key.allowed} (default: {key.default})")


def design_from_args(args: argparse.Namespace) -> dict:
    """The design keys given on the command line (parsed, checked by the schema); the rest are left
    to their defaults."""
    given = {name: getattr(args, name) for name in DESIGN_KEYS}
    design = {name: value if isinstance(value, bool) else KEYS[name].parse(value)
              for name, value in given.items() if value not in (None, False)}
    Design(**design)
    return design
