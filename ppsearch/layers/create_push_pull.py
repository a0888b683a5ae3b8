"""Push-pull layers by variant name (as timm's ``create_*`` functions build layers by name)."""
from __future__ import annotations

from typing import Any

from .push_pull import PushPull2d

# importing the variants registers them, in this order: the search schema's (a test pins it)
# isort: off
from .push_pull_upsample import UpsamplePushPull2d  # noqa: F401
from .push_pull_minmax import MinMaxPushPull2d  # noqa: F401
# isort: on

PUSH_PULL_VARIANTS: dict[str, type[PushPull2d]] = PushPull2d.variants


def create_push_pull(variant: str, *args: Any, **kwargs: Any) -> PushPull2d:
    """The push-pull layer of ``variant`` (``"upsample"`` or ``"minmax_avg"``) built with ``args``
    and ``kwargs``, :class:`~ppsearch.layers.push_pull.PushPull2d`'s arguments.

    A keyword of another variant is accepted at its default, which changes nothing (a design sets
    every variant's keywords), and refused otherwise; ``scale`` is ignored where unused.
    """
    return PushPull2d(*args, variant=variant, **kwargs)
