"""The inhibition design of a model: where push-pull goes and how it is configured.

A search configuration is exactly such a dict (the layer's own keyword names plus ``placement`` and
``antialias``); ``Design`` validates it once so that models, surgery and the search agree.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .layers import PushPull2d, parse_antialias

PLACEMENTS = ("none", "pp", "b1", "b2", "all")
LAYER_KEYS = ("variant", "scale", "pull_kernel_size", "alpha", "trainable_alpha", "avg_kernel_size")


@dataclasses.dataclass(frozen=True)
class Design:
    """placement: ``none`` | ``pp`` (first conv) | ``b1``/``b2`` (also every conv of the first one or
    two stages) | ``all`` (every eligible conv); the remaining fields are ``PushPull2d`` keywords,
    except ``antialias`` (BlurPool filter: none, rect2, tri3, bin5 or a size 1..7)."""

    placement: str = "none"
    variant: str = "upsample"
    scale: float = 2.0
    pull_kernel_size: int | None = None
    alpha: float = 1.0
    trainable_alpha: bool = False
    avg_kernel_size: int = 0
    antialias: str | int = "none"

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise ValueError(f"unknown placement {self.placement!r}; allowed: {', '.join(PLACEMENTS)}")
        parse_antialias(self.antialias)
        PushPull2d(1, 1, 3, **self.layer_kwargs())  # the layer validates its own arguments

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> Design:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ValueError(f"unknown design key {unknown[0]!r}; allowed: {', '.join(sorted(names))}")
        return cls(**config)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def layer_kwargs(self) -> dict[str, Any]:
        """The PushPull2d keywords (``scale`` is unused by ``minmax_avg``)."""
        return {name: getattr(self, name) for name in LAYER_KEYS}

    @property
    def stages(self) -> int | None:
        """How many stages after the first conv get push-pull (None: all of them)."""
        return {"none": 0, "pp": 0, "b1": 1, "b2": 2, "all": None}[self.placement]
