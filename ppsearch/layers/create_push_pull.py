"""Push-pull layers by variant name (as timm's ``create_*`` functions build layers by name)."""
from __future__ import annotations

import inspect
from typing import Any

from ..errors import UserError
from .push_pull import PushPull2d
from .push_pull_minmax import MinMaxPushPull2d
from .push_pull_upsample import UpsamplePushPull2d

PUSH_PULL_VARIANTS: dict[str, type[PushPull2d]] = {cls.variant: cls for cls in (UpsamplePushPull2d, MinMaxPushPull2d)}
# Only supplies a default (upsample's pull size, which an explicit pull_kernel_size overrides too),
# so a variant that derives nothing from it ignores it whatever its value.
_DEFAULT_ONLY_KEYWORDS = ("scale",)


def _variant_keywords(layer_class: type[PushPull2d]) -> dict[str, Any]:
    """The keywords a variant adds to PushPull2d's, with their defaults."""
    parameters = inspect.signature(layer_class.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def create_push_pull(variant: str, *args: Any, **kwargs: Any) -> PushPull2d:
    """The push-pull layer of ``variant`` (``"upsample"`` or ``"minmax_avg"``) built with ``args``
    and ``kwargs``, :class:`~ppsearch.layers.push_pull.PushPull2d`'s arguments.

    A keyword of another variant is accepted at its default, which changes nothing (a design sets
    every variant's keywords), and refused otherwise; ``scale`` is ignored where unused.
    """
    layer_class = PUSH_PULL_VARIANTS.get(variant)
    if layer_class is None:
        raise UserError(f"unknown variant {variant!r}; allowed: {', '.join(PUSH_PULL_VARIANTS)}")
    own = _variant_keywords(layer_class)
    for other, other_class in PUSH_PULL_VARIANTS.items():
        for name, default in _variant_keywords(other_class).items():
            if name in own or name not in kwargs:
                continue
            value = kwargs.pop(name)
            if value != default and name not in _DEFAULT_ONLY_KEYWORDS:
                raise UserError(f"{name} applies to variant={other!r} only, got {name}={value!r} "
                                f"with variant={variant!r}")
    return layer_class(*args, **kwargs)
