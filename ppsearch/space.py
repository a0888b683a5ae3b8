"""Search spaces: YAML files naming a dataset, the defaults of every trial, the dimensions a search
explores (with their conditional structure), the objectives, budget adjustments and the papers'
fixed configurations. ``resnet-cifar`` and the other embedded spaces live in the top-level
``search_spaces/`` folder; any path to a user's YAML file works too.

A dimension is ``{choices: [...]}`` or ``{low: L, high: H}`` (plus ``log: true`` or ``step: S``),
optionally ``when: {other_dimension: [values]}``: it is sampled only when the dimensions it names
took one of those values (and were themselves active); otherwise the trial keeps the default.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml

from .budgets import get_budget
from .data import DATASETS
from .design import Design
from .trial import CONFIG_KEYS, TrialConfig

SPACES_DIR = Path(__file__).resolve().parents[1] / "search_spaces"
FIELDS = ("name", "description", "dataset", "defaults", "dimensions", "objectives", "budgets", "paper_configs")
OBJECTIVES = ("clean_error", "mce", "mfr", "relative_mce", "corruption_error")
PAPER_PREFIX = "paper:"
DESIGN_DEFAULTS = Design().to_dict()


@dataclasses.dataclass(frozen=True)
class Dimension:
    name: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    when: dict[str, tuple] = dataclasses.field(default_factory=dict)
    integer: bool = False

    def active(self, config: Mapping[str, Any], active_dims: set[str], dims: set[str]) -> bool:
        return all((parent not in dims or parent in active_dims) and config.get(parent) in values
                   for parent, values in self.when.items())

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices and type(value) in {type(c) for c in self.choices if c == value}
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def describe(self) -> str:
        return f"one of {list(self.choices)}" if self.choices is not None else f"in [{self.low}, {self.high}]"


@dataclasses.dataclass(frozen=True)
class Space:
    name: str
    description: str
    dataset: str
    defaults: dict[str, Any]
    dimensions: tuple[Dimension, ...]
    objectives: tuple[str, ...]
    budgets: dict[str, dict[str, int | None]]
    paper_configs: dict[str, dict[str, Any]]
    path: Path

    def config(self, tokens: Sequence[str] = ()) -> dict[str, Any]:
        """A configuration from ``paper:NAME`` and ``key=value`` tokens, applied in order over the
        space's defaults (``paper:resnet20-b1 alpha=0.5``)."""
        config = dict(self.defaults)
        for token in tokens:
            if token.startswith(PAPER_PREFIX):
                name = token[len(PAPER_PREFIX):]
                if name not in self.paper_configs:
                    raise ValueError(f"unknown preset {token!r} in space {self.name}; allowed: "
                                     + ", ".join(PAPER_PREFIX + n for n in self.paper_configs))
                config.update(self.paper_configs[name])
            else:
                config.update(parse_override(token))
        return config

    def budget(self, name: str, overrides: Mapping[str, int | None] | None = None) -> dict[str, int | None]:
        """The budget overrides this space applies to budget ``name``, then the caller's."""
        get_budget(name)
        return {**self.budgets.get(name, {}), **(overrides or {})}

    def full(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` completed with the space's defaults and the design's own."""
        return {**DESIGN_DEFAULTS, **self.defaults, **config}

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Define-by-run sampling for Optuna: the active dimensions are suggested in file order;
        returns the defaults that no dimension sets, so that the config is complete."""
        chosen = self._walk(self.defaults, lambda dim: dim.suggest(trial))
        return {k: v for k, v in self.defaults.items() if k not in chosen}

    def search_point(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The values of the dimensions that are active for a full ``config`` (what Optuna enqueues)."""
        full = self.full(config)
        return self._walk(full, lambda dim: full[dim.name])

    def _walk(self, base: Mapping[str, Any], value_of) -> dict[str, Any]:
        """The dimensions in file order: each one active given ``base`` and the values chosen so
        far takes ``value_of(dim)``; returns the chosen values."""
        config, chosen = dict(base), {}
        names = {d.name for d in self.dimensions}
        for dim in self.dimensions:
            if dim.active(config, set(chosen), names):
                chosen[dim.name] = config[dim.name] = value_of(dim)
        return chosen

    def paper_name(self, config: Mapping[str, Any]) -> str | None:
        """The paper configuration that ``config`` is, if any (keys that neither the preset nor the
        defaults fix, such as a budget's recipe, do not matter)."""
        full = self.full(config)
        for name, preset in self.paper_configs.items():
            if all(full.get(k) == v for k, v in self.full(preset).items()):
                return name
        return None


def spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def load_space(name_or_path: str | Path) -> Space:
    """An embedded space by name, or a YAML file by path. A malformed space raises ValueError naming
    the field, the value and what is allowed."""
    path = Path(name_or_path).expanduser()
    if not path.suffix:
        path = SPACES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown space {str(name_or_path)!r}; embedded spaces: {', '.join(spaces())}, "
                             f"or give a path to a .yaml file")
    if not path.is_file():
        raise ValueError(f"space file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"space file {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    where = f"space {path.name}"
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must hold a mapping with fields {', '.join(FIELDS)}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}; allowed: {', '.join(FIELDS)}")
    dataset = raw.get("dataset", "cifar10")
    if dataset not in DATASETS:
        raise ValueError(f"{where}: dataset {dataset!r} is not one of {', '.join(DATASETS)}")
    defaults = _mapping(raw.get("defaults", {}), f"{where}: defaults")
    dimensions = tuple(_dimension(name, spec, f"{where}: dimensions.{name}")
                       for name, spec in _mapping(raw.get("dimensions", {}), f"{where}: dimensions").items())
    _check_conditions(dimensions, where)
    objectives = tuple(_list(raw.get("objectives", ["clean_error", "mce", "mfr"]), f"{where}: objectives"))
    check_objectives(objectives, f"{where}: objectives")
    budgets = {}
    for name, overrides in _mapping(raw.get("budgets", {}), f"{where}: budgets").items():
        try:
            get_budget(name, _mapping(overrides, f"{where}: budgets.{name}"))
        except ValueError as error:
            raise ValueError(f"{where}: budgets.{name}: {error}") from None
        budgets[name] = dict(overrides)
    presets = _mapping(raw.get("paper_configs", {}), f"{where}: paper_configs")
    space = Space(raw.get("name", path.stem), raw.get("description", ""), dataset, defaults, dimensions, objectives,
                  budgets, {}, path)
    for name, preset in {"defaults": {}, **presets}.items():
        field = "defaults" if name == "defaults" else f"paper_configs.{name}"
        config = {**defaults, **_mapping(preset, f"{where}: {field}")}
        try:
            TrialConfig.create(config, dataset=dataset, budget="smoke")
        except ValueError as error:
            raise ValueError(f"{where}: {field}: {error}") from None
        if name != "defaults":
            _check_reachable(space, config, f"{where}: {field}")
    return dataclasses.replace(space, paper_configs={k: dict(v) for k, v in presets.items()})


def check_objectives(objectives: Sequence[str], where: str) -> None:
    if not objectives:
        raise ValueError(f"{where}: at least one objective is needed; allowed: {', '.join(OBJECTIVES)}")
    for objective in objectives:
        if objective not in OBJECTIVES:
            raise ValueError(f"{where}: unknown objective {objective!r}; allowed: {', '.join(OBJECTIVES)}")
    if len(set(objectives)) != len(objectives):
        raise ValueError(f"{where}: objectives repeat: {', '.join(objectives)}")


def parse_override(token: str) -> dict[str, Any]:
    """``key=value`` with the value read as a YAML scalar and checked against the key's type."""
    key, sep, text = token.partition("=")
    if not sep or not key:
        raise ValueError(f"malformed override {token!r}: expected key=value or {PAPER_PREFIX}NAME")
    if key not in CONFIG_KEYS:
        raise ValueError(f"malformed override {token!r}: unknown key {key!r}; allowed: {', '.join(CONFIG_KEYS)}")
    try:
        value = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        value = text
    expected = _KEY_TYPES.get(key, (str,))
    if float in expected:
        value = _number(value)
    if value is None and type(None) in expected:
        return {key: None}
    if isinstance(value, int) and not isinstance(value, bool) and float in expected and int not in expected:
        value = float(value)
    if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
        kinds = " or ".join(_TYPE_NAMES[t] for t in expected)
        raise ValueError(f"malformed override {token!r}: {key} must be {kinds}")
    return {key: value}


_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "scale": (float,), "alpha": (float,), "pull_kernel_size": (int, type(None)), "trainable_alpha": (bool,),
    "avg_kernel_size": (int,), "antialias": (str, int),
}
_TYPE_NAMES = {float: "a number", int: "an integer", bool: "true or false", str: "a name", type(None): "null"}
_FLOAT_KEYS = ("scale", "alpha")
_INT_KEYS = ("pull_kernel_size", "avg_kernel_size")
_DIMENSION_FIELDS = ("choices", "low", "high", "log", "step", "when")


def typed_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration read back from a table (where NaN stands for null and integer columns with
    gaps turn float) with each key's own type restored."""
    out = {}
    for key, value in config.items():
        if isinstance(value, float) and math.isnan(value):
            value = None
        elif key in _INT_KEYS and isinstance(value, float) and value.is_integer():
            value = int(value)
        elif hasattr(value, "item"):  # numpy scalars
            value = value.item()
        out[key] = value
    return out


def _dimension(name: str, spec: Any, where: str) -> Dimension:
    if name not in CONFIG_KEYS:
        raise ValueError(f"{where}: unknown dimension {name!r}; allowed: {', '.join(CONFIG_KEYS)}")
    spec = _mapping(spec, where)
    unknown = sorted(set(spec) - set(_DIMENSION_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}; allowed: {', '.join(_DIMENSION_FIELDS)}")
    when = {k: tuple(_list(v, f"{where}.when.{k}")) for k, v in _mapping(spec.get("when", {}), f"{where}.when").items()}
    context = {parent: values[0] for parent, values in when.items() if values}  # where the values apply
    if "choices" in spec:
        if {"low", "high", "log", "step"} & set(spec):
            raise ValueError(f"{where}: give either choices or low/high, not both")
        choices = tuple(float(c) if name in _FLOAT_KEYS and isinstance(c, int) and not isinstance(c, bool) else c
                        for c in _list(spec["choices"], f"{where}.choices"))
        if not choices:
            raise ValueError(f"{where}.choices: empty; give at least one value")
        for value in choices:
            try:
                TrialConfig.create({**context, name: value}, dataset="cifar10", budget="smoke")
            except ValueError as error:
                raise ValueError(f"{where}.choices: value {value!r} is not allowed: {error}") from None
        return Dimension(name, choices=choices, when=when)
    low, high = (_number(spec.get(k)) for k in ("low", "high"))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)) \
            or low >= high:
        raise ValueError(f"{where}: needs choices, or numbers low < high; got low={low!r}, high={high!r}")
    if spec.get("log") and low <= 0:
        raise ValueError(f"{where}: log: true needs low > 0, got low={low!r}")
    for value in (low, high):
        try:
            TrialConfig.create({**context, name: float(value) if name in _FLOAT_KEYS else value},
                               dataset="cifar10", budget="smoke")
        except ValueError as error:
            raise ValueError(f"{where}: bound {value!r} is not allowed: {error}") from None
    if name not in _FLOAT_KEYS and name not in _INT_KEYS:
        raise ValueError(f"{where}: {name} takes choices, not a numeric range")
    return Dimension(name, low=low, high=high, log=bool(spec.get("log", False)), step=spec.get("step"), when=when,
                     integer=name in _INT_KEYS)


def _check_conditions(dimensions: tuple[Dimension, ...], where: str) -> None:
    seen: set[str] = set()
    for dim in dimensions:
        for parent in dim.when:
            if parent not in CONFIG_KEYS:
                raise ValueError(f"{where}: dimensions.{dim.name}.when: unknown key {parent!r}; "
                                 f"allowed: {', '.join(CONFIG_KEYS)}")
            if parent in {d.name for d in dimensions} and parent not in seen:
                raise ValueError(f"{where}: dimensions.{dim.name}.when names {parent!r}, which must come "
                                 f"before {dim.name!r} in the file")
        seen.add(dim.name)


def _check_reachable(space: Space, config: Mapping[str, Any], where: str) -> None:
    """A paper configuration must be a point of the space: inside the domains of its active
    dimensions, and equal to the defaults everywhere else."""
    point = space.search_point(config)
    full = space.full(config)
    for dim in space.dimensions:
        if dim.name in point and not dim.contains(point[dim.name]):
            raise ValueError(f"{where}: {dim.name}={point[dim.name]!r} is outside the space's "
                             f"dimension ({dim.describe()})")
    rebuilt = space.full(point)
    for key, value in full.items():
        if rebuilt.get(key) != value:
            raise ValueError(f"{where}: {key}={value!r} cannot be reached: {key} is not an active "
                             f"dimension for this configuration and its default is {rebuilt.get(key)!r}")


def _number(value: Any) -> Any:
    """YAML 1.1 reads 1e-3 or 1.0e38 (no dot or no exponent sign) as strings: take them as numbers."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a mapping, got {value!r}")
    return dict(value)


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list, got {value!r}")
    return value

