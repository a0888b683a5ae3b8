"""Named compute budgets: how much of the data a trial trains on, for how long, and how many
images its evaluation uses. Every budget lives here and nowhere else.

``None`` means the whole split. -C and -P sets are generated once per run from the first
``max(c_images, p_images)`` test images and reused by every trial of the run.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from ..errors import UserError
from .names import DEMO, OVERRIDABLE, PAPER, SHORT, SMOKE
from .recipes import get_recipe


@dataclasses.dataclass(frozen=True)
class Budget:
    name: str
    train_images: int | None  # first N training images
    epochs: int
    eval_images: int | None  # clean test images
    c_images: int | None  # test images per corruption x severity
    p_images: int | None  # sequences per perturbation
    recipe: str  # training recipe used unless the trial names another


BUDGETS = {b.name: b for b in (
    Budget(SMOKE, 256, 2, 200, 10, 4, "fast"),  # seconds on a CPU: tests
    # about 20 s per trial on one core (training and both evaluations; ResNet-20-b1 twice that): the
    # README's main command, 14 papers + 6 searched + a confirmation seed of the front and the
    # papers, in about 10 minutes on 2 cores; it shows the tool, not the science (clean error ~0.3)
    Budget(DEMO, 800, 3, 200, 10, 3, "fast"),
    Budget(SHORT, None, 15, None, 2000, 500, "fast"),  # minutes per trial on a GPU
    Budget(PAPER, None, 200, None, None, None, "paper"),  # the seed paper's full schedule
)}



def get_budget(name: str, overrides: Mapping[str, int | str | None] | None = None) -> Budget:
    """The named budget, with some of its sizes (or its recipe) changed by ``overrides``."""
    if name not in BUDGETS:
        raise UserError(f"unknown budget {name!r}; allowed: {', '.join(BUDGETS)}")
    overrides = dict(overrides or {})
    for key, value in overrides.items():
        if key not in OVERRIDABLE:
            raise UserError(f"unknown budget field {key!r}; allowed: {', '.join(OVERRIDABLE)}")
        if key == "recipe":
            get_recipe(value)
        elif (value is None and key == "epochs") or (value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1)):
            allowed = "a positive integer" + ("" if key == "epochs" else " or null (all)")
            raise UserError(f"budget field {key} must be {allowed}, got {value!r}")
    return dataclasses.replace(BUDGETS[name], **overrides)


def parse_budget_overrides(tokens: Sequence[str]) -> dict[str, int | str | None]:
    """``key=value`` tokens (``epochs=5``, ``c_images=null``, ``recipe=paper``) as a dict; values
    checked by :func:`get_budget`."""
    overrides: dict[str, int | str | None] = {}
    for token in tokens:
        key, sep, text = token.partition("=")
        if not sep:
            raise UserError(f"malformed budget override {token!r}: expected key=value")
        if key == "recipe":
            overrides[key] = text
            continue
        try:
            overrides[key] = None if text in ("null", "all") else int(text)
        except ValueError:
            raise UserError(f"malformed budget override {token!r}: {key} must be an integer") from None
    return overrides
