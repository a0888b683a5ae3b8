"""Named compute budgets: how much of the data a trial trains on, for how long, and how many
images its evaluation uses. Every budget lives here and nowhere else.

``None`` means the whole split. -C and -P sets are generated once per run from the first
``max(c_images, p_images)`` test images and reused by every trial of the run.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Budget:
    name: str
    train_images: int | None  # first N training images
    epochs: int
    eval_images: int | None  # clean test images
    c_images: int | None  # test images per corruption x severity
    p_images: int | None  # sequences per perturbation
    recipe: str  # training recipe used unless the trial names another
    about: str


BUDGETS = {b.name: b for b in (
    Budget("smoke", 256, 2, 200, 10, 4, "fast", "seconds on a CPU: tests"),
    Budget("demo", 2000, 4, 1000, 100, 20, "fast", "about a minute per trial on a 2-core CPU"),
    Budget("short", None, 15, None, 2000, 500, "fast", "minutes per trial on a GPU"),
    Budget("paper", None, 200, None, None, None, "paper", "the seed paper's full schedule"),
)}


def get_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}; allowed: {', '.join(BUDGETS)}")
    return BUDGETS[name]
