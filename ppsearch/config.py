"""The configuration schema: every key a configuration may set, declared once.

A configuration (a point of a search space, a ``ppsearch train --config``, a row of a results
table, what ``ppsearch pick`` prints) is a flat mapping of these keys. The design keys say where
push-pull goes and how it is configured (``placement`` plus the :class:`~ppsearch.PushPull2d`
keywords and ``antialias``); the model keys say what is trained around it. The space loader,
``key=value`` overrides, the command line's design flags and the results table all read
:data:`KEYS`; values are checked against it, never by building layers or models.

This module imports neither torch nor the trainer: reports and ``pick`` use it to read a run.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from .errors import UserError

PLACEMENTS = ("none", "pp", "b1", "b2", "all")
VARIANTS = ("upsample", "minmax_avg")
ANTIALIAS_FILTERS = {"none": 0, "rect2": 2, "tri3": 3, "bin5": 5}
FILTER_SIZES = range(1, 8)
# where the blur of a strided residual block sits: the seed code's -lpf ResNets blur the block's
# input and run its first conv at stride 1; Zhang's run the first conv at stride 1, then BN, ReLU,
# blur, and the next conv
ANTIALIAS_POSITIONS = ("after_conv1", "block_input")
AUGMENTATIONS = ("none", "standard", "cutout", "autoaugment", "autoaugment+cutout", "augmix")
PAPER_PREFIX = "paper:"


def parse_antialias(value: str | int | None) -> int:
    """Filter size from a name ('none', 'rect2', 'tri3', 'bin5') or a size 1..7; 0 means none."""
    if value is None:
        return 0
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, str) and value.lower() in ANTIALIAS_FILTERS:
        return ANTIALIAS_FILTERS[value.lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in FILTER_SIZES:
        return value
    allowed = ", ".join(list(ANTIALIAS_FILTERS) + [str(s) for s in FILTER_SIZES])
    raise UserError(f"unknown antialias filter {value!r}; allowed: {allowed}")


def _odd_at_least_3(value: int) -> bool:
    return value >= 3 and value % 2 == 1


@dataclasses.dataclass(frozen=True)
class Key:
    """One configuration key: its types, default, allowed values (a list where they are closed,
    else a predicate) and what is allowed, in words."""

    name: str
    types: tuple[type, ...]
    default: Any
    allowed: str
    choices: tuple = ()
    valid: Callable[[Any], bool] | None = None

    def check(self, value: Any) -> Any:
        """``value`` as this key's type (integers become floats where a number is declared);
        raises UserError naming the key, the value and what is allowed."""
        typed = _declared_type(value, self.types)
        if self.choices:
            if typed not in self.choices or not any(type(typed) is type(c) for c in self.choices if c == typed):
                raise UserError(f"unknown {self.name} {value!r}; allowed: {', '.join(map(str, self.choices))}")
            return typed
        if typed is _WRONG_TYPE or (typed is not None and self.valid is not None and not self.valid(typed)):
            raise UserError(f"{self.name} must be {self.allowed}, got {value!r}")
        return typed

    def parse(self, text: str) -> Any:
        """A value given as text (``key=value``, a command-line flag), read as a YAML scalar."""
        try:
            value = yaml.safe_load(text) if text else None
        except yaml.YAMLError:
            value = text
        if str in self.types and not isinstance(value, str) and value is not None and not (
                int in self.types and isinstance(value, int)):
            value = text  # a name that YAML reads as something else ("none" stays a name)
        return self.check(yaml_number(value) if float in self.types else value)


_WRONG_TYPE = object()


def _declared_type(value: Any, types: tuple[type, ...]) -> Any:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars from a table
        value = value.item()
    if value is None:
        return None if type(None) in types else _WRONG_TYPE
    if isinstance(value, bool):
        return value if bool in types else _WRONG_TYPE
    if isinstance(value, int) and int not in types and float in types:
        return float(value)
    if isinstance(value, float) and float not in types:
        return int(value) if int in types and value.is_integer() else _WRONG_TYPE
    if isinstance(value, float) and not math.isfinite(value):
        return _WRONG_TYPE
    return value if isinstance(value, types) else _WRONG_TYPE


_NONE = type(None)
KEYS: dict[str, Key] = {key.name: key for key in (
    # model keys: what is trained around the inhibition design
    # open sets, checked where they are defined (the model zoo, the recipes): see ppsearch.training.trial
    Key("arch", (str,), "resnet20", "a ppsearch architecture (`ppsearch models`) or timm:NAME"),
    Key("augmentation", (str,), "standard", "a training augmentation", choices=AUGMENTATIONS),
    Key("recipe", (str, _NONE), None, "the name of a training recipe, or null (the budget's)"),
    # design keys: where push-pull goes and how it is configured
    Key("placement", (str,), "none", "none, pp (first conv), b1/b2 (and the first one or two stages) or all",
        choices=PLACEMENTS),
    Key("variant", (str,), "upsample", "the pull kernel's construction", choices=VARIANTS),
    Key("scale", (float,), 2.0, "a number >= 1 (the upsampling factor h)", valid=lambda v: v >= 1),
    Key("pull_kernel_size", (int, _NONE), None, "an odd integer >= 3, or null (from scale)", valid=_odd_at_least_3),
    Key("alpha", (float,), 1.0, "a finite number >= 0 (the inhibition strength)", valid=lambda v: v >= 0),
    Key("trainable_alpha", (bool,), False, "true or false (learn one alpha per output channel)"),
    Key("avg_kernel_size", (int,), 0, "0 or an odd integer >= 3 (minmax_avg's pull average pool)",
        valid=lambda v: v == 0 or _odd_at_least_3(v)),
    Key("antialias", (str, int), "none", "none, rect2, tri3, bin5 or a filter size 1..7",
        choices=(*ANTIALIAS_FILTERS, *FILTER_SIZES)),
    Key("antialias_position", (str,), "after_conv1", "where a strided residual block's blur sits: after_conv1 "
        "(Zhang) or block_input (the seed code's -lpf ResNets)", choices=ANTIALIAS_POSITIONS),
)}
MODEL_KEYS = ("arch", "augmentation", "recipe")
DESIGN_KEYS = tuple(name for name in KEYS if name not in MODEL_KEYS)
CONFIG_KEYS = tuple(KEYS)
LAYER_KEYS = ("variant", "scale", "pull_kernel_size", "alpha", "trainable_alpha", "avg_kernel_size")


@dataclasses.dataclass(frozen=True)
class Design:
    """Where push-pull goes and how it is configured (the design keys of :data:`KEYS`)."""

    placement: str = KEYS["placement"].default
    variant: str = KEYS["variant"].default
    scale: float = KEYS["scale"].default
    pull_kernel_size: int | None = KEYS["pull_kernel_size"].default
    alpha: float = KEYS["alpha"].default
    trainable_alpha: bool = KEYS["trainable_alpha"].default
    avg_kernel_size: int = KEYS["avg_kernel_size"].default
    antialias: str | int = KEYS["antialias"].default
    antialias_position: str = KEYS["antialias_position"].default

    def __post_init__(self) -> None:
        for name in DESIGN_KEYS:
            object.__setattr__(self, name, KEYS[name].check(getattr(self, name)))
        if self.variant != "minmax_avg" and self.avg_kernel_size:
            raise UserError("avg_kernel_size applies to variant='minmax_avg' only")
        if self.variant != "upsample" and self.pull_kernel_size is not None:
            raise UserError("pull_kernel_size applies to variant='upsample' only")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Design:
        """The design held by ``mapping`` (a configuration, a results-table row, a model file's
        spec): its design keys, others ignored; a key a table leaves empty (NaN) takes its default.
        Unknown keys are the business of :func:`check_config`."""
        return cls(**{name: mapping[name] for name in DESIGN_KEYS if name in mapping and not _missing(mapping[name])})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def layer_kwargs(self) -> dict[str, Any]:
        """The PushPull2d keywords (``scale`` is unused by ``minmax_avg``)."""
        return {name: getattr(self, name) for name in LAYER_KEYS}

    def signature(self) -> dict[str, Any]:
        """The keys that make a difference to the model, with their values: two designs with the
        same signature build the same layers (``scale`` says nothing when the pull size is explicit
        or the variant is ``minmax_avg``, a fixed ``alpha`` nothing when it is learned, the pull keys
        nothing without push-pull, the blur's position nothing without a blur)."""
        keys = ["placement", "antialias"] + (["antialias_position"] if self.blurs else [])
        if self.placement != "none":
            keys += ["variant", "trainable_alpha"] + ([] if self.trainable_alpha else ["alpha"])
            if self.variant == "upsample":
                keys += ["pull_kernel_size"] if self.pull_kernel_size is not None else ["scale"]
            else:
                keys += ["avg_kernel_size"]
        return {key: getattr(self, key) for key in DESIGN_KEYS if key in keys}

    @property
    def is_plain(self) -> bool:
        """No push-pull and no anti-aliasing: the model the papers' overhead figures and the cost
        ratios (``--constraint flops<=1.3x``) divide by."""
        return self.signature() == Design().signature()

    @property
    def blurs(self) -> bool:
        """Whether the design anti-aliases (a filter of size 1 is no filter)."""
        return self.antialias not in ("none", 1)

    @property
    def stages(self) -> int | None:
        """How many stages after the first conv get push-pull (None: all of them)."""
        return {"none": 0, "pp": 0, "b1": 1, "b2": 2, "all": None}[self.placement]


def check_design(design: Mapping[str, Any]) -> Design:
    """The design a caller spelled out (``build_model``'s keywords, a model file's spec): every key
    must be a design key; raises UserError naming the first problem."""
    unknown = sorted(set(design) - set(DESIGN_KEYS))
    if unknown:
        raise UserError(f"unknown design key {unknown[0]!r}; allowed: {', '.join(DESIGN_KEYS)}")
    return Design.from_mapping(design)


def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with every value checked and in its declared type, the design's cross-key rules
    included; raises UserError naming the first problem."""
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise UserError(f"unknown configuration key {unknown[0]!r}; allowed: {', '.join(CONFIG_KEYS)}")
    checked = {name: KEYS[name].check(value) for name, value in config.items()}
    Design.from_mapping(checked)
    return checked


def parse_override(token: str) -> dict[str, Any]:
    """``key=value`` with the value read as a YAML scalar and checked against the key."""
    key, sep, text = token.partition("=")
    if not sep or not key:
        raise UserError(f"malformed override {token!r}: expected key=value or {PAPER_PREFIX}NAME")
    if key not in KEYS:
        raise UserError(f"malformed override {token!r}: unknown key {key!r}; allowed: {', '.join(CONFIG_KEYS)}")
    try:
        return {key: KEYS[key].parse(text)}
    except UserError as error:
        raise UserError(f"malformed override {token!r}: {error}") from None


def typed_config(row: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration keys of a results-table row with their declared types restored (tables
    store null as NaN, integers with gaps as floats, and numpy scalars)."""
    out = {}
    for name in CONFIG_KEYS:
        if name in row:
            out[name] = KEYS[name].check(None if _missing(row[name]) else row[name])
    return out


def _missing(value: Any) -> bool:
    """A value a table leaves empty: NaN (tables store null as NaN)."""
    return isinstance(value, float) and math.isnan(value)


def yaml_number(value: Any) -> Any:
    """YAML 1.1 reads 1e-3 or 1.0e38 (no dot or no exponent sign) as strings: take them as numbers."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value
