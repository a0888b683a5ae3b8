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
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna

from ..config import CONFIG_KEYS, DESIGN_KEYS, KEYS, PAPER_PREFIX, Design, parse_override, yaml_number
from ..data.datasets import DATASETS
from ..errors import UserError
from ..files import read_yaml
from ..rundir import check_objectives
from ..training.budgets import get_budget
from ..training.trial import check_trainable, check_value

SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"
FIELDS = ("name", "description", "dataset", "defaults", "dimensions", "objectives", "budgets", "paper_configs")
DESIGN_DEFAULTS = {name: KEYS[name].default for name in DESIGN_KEYS}


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

    def distribution(self) -> optuna.distributions.BaseDistribution:
        """What Optuna samples this dimension from (and holds in the study for every trial that sampled it)."""
        if self.choices is not None:
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        if self.integer:
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), step=int(self.step or 1),
                                                        log=self.log)
        return optuna.distributions.FloatDistribution(float(self.low), float(self.high), step=self.step, log=self.log)

    def suggest(self, trial: optuna.Trial) -> Any:
        distribution = self.distribution()
        if isinstance(distribution, optuna.distributions.CategoricalDistribution):
            return trial.suggest_categorical(self.name, distribution.choices)
        suggest = trial.suggest_int if self.integer else trial.suggest_float
        return suggest(self.name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)

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
                    raise UserError(f"unknown preset {token!r} in space {self.name}; allowed: "
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

    def plain_paper(self) -> str | None:
        """The name of the paper configuration that is the plain model (no push-pull, no
        anti-aliasing: what the paper's overhead ratios divide by), if the space has one."""
        return next((name for name, preset in self.paper_configs.items()
                     if Design.from_mapping(self.full(preset)).is_plain), None)

    def paper_name(self, config: Mapping[str, Any]) -> str | None:
        """The paper configuration that ``config`` is, if any (keys that neither the preset nor the
        defaults fix, such as a budget's recipe, do not matter)."""
        full = self.full(config)
        for name, preset in self.paper_configs.items():
            if all(full.get(k) == v for k, v in self.full(preset).items()):
                return name
        return None

    def express(self, wanted: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The search point of this space that trains the design ``wanted`` (a design's
        signature), or why there is none: a value outside a dimension, a key the space fixes to
        another value, or a paper configuration of the space (which a run trains anyway)."""
        point = self.search_point({**self.defaults, **wanted})
        for dim in self.dimensions:
            if dim.name in point and not dim.contains(point[dim.name]):
                return point, f"{dim.name}={point[dim.name]!r} is outside the space's {dim.name} ({dim.describe()})"
        trained = Design.from_mapping(self.full({**self.defaults, **point})).signature()
        for key, value in wanted.items():
            if trained.get(key) != value:
                return point, f"the space {self.name} fixes {key} to {trained.get(key)!r}"
        paper = self.paper_name({**self.defaults, **point})
        if paper is not None:
            return point, f"it is the paper configuration {PAPER_PREFIX}{paper}, which the run trains anyway"
        return point, None


def spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def load_space(name_or_path: str | Path) -> Space:
    """An embedded space by name, or a YAML file by path. A malformed space raises ValueError naming
    the field, the value and what is allowed."""
    path = Path(name_or_path).expanduser()
    if not path.suffix:
        path = SPACES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UserError(f"unknown space {str(name_or_path)!r}; embedded spaces: {', '.join(spaces())}, "
                             f"or give a path to a .yaml file")
    raw = read_yaml(path, "space file")
    where = f"space {path.name}"
    if not isinstance(raw, dict):
        raise UserError(f"{where} must hold a mapping with fields {', '.join(FIELDS)}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise UserError(f"{where}: unknown field {unknown[0]!r}; allowed: {', '.join(FIELDS)}")
    name, description = raw.get("name", path.stem), raw.get("description", "")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UserError(f"{where}: name must be letters, digits, '.', '_' or '-' (it names run folders), got {name!r}")
    if not isinstance(description, str):
        raise UserError(f"{where}: description must be text, got a {type(description).__name__}")
    dataset = raw.get("dataset", "cifar10")
    if dataset not in DATASETS:
        raise UserError(f"{where}: dataset {dataset!r} is not one of {', '.join(DATASETS)}")
    defaults = _mapping(raw.get("defaults", {}), f"{where}: defaults")
    dimensions = tuple(_dimension(name, spec, f"{where}: dimensions.{name}")
                       for name, spec in _mapping(raw.get("dimensions", {}), f"{where}: dimensions").items())
    _check_conditions(dimensions, defaults, where)
    objectives = tuple(_list(raw.get("objectives", ["clean_error", "mce", "mfr"]), f"{where}: objectives"))
    check_objectives(objectives, f"{where}: objectives")
    budgets = {}
    for budget, overrides in _mapping(raw.get("budgets", {}), f"{where}: budgets").items():
        try:
            get_budget(budget, _mapping(overrides, f"{where}: budgets.{budget}"))
        except UserError as error:
            raise UserError(f"{where}: budgets.{budget}: {error}") from None
        budgets[budget] = dict(overrides)
    presets = _mapping(raw.get("paper_configs", {}), f"{where}: paper_configs")
    space = Space(name, description, dataset, defaults, dimensions, objectives,
                  budgets, {}, path)
    for preset_name, preset in {"defaults": {}, **presets}.items():
        field = "defaults" if preset_name == "defaults" else f"paper_configs.{preset_name}"
        config = {**defaults, **_mapping(preset, f"{where}: {field}")}
        try:
            check_trainable(config)
        except UserError as error:
            raise UserError(f"{where}: {field}: {error}") from None
        if preset_name != "defaults":
            _check_reachable(space, config, f"{where}: {field}")
    return dataclasses.replace(space, paper_configs={k: dict(v) for k, v in presets.items()})


_NAME = re.compile(r"[A-Za-z0-9._-]+")
_DIMENSION_FIELDS = ("choices", "low", "high", "log", "step", "when")
_FLOAT_KEYS = tuple(name for name, key in KEYS.items() if float in key.types)
_INT_KEYS = tuple(name for name, key in KEYS.items() if int in key.types and str not in key.types)


def _dimension(name: str, spec: Any, where: str) -> Dimension:
    if name not in CONFIG_KEYS:
        raise UserError(f"{where}: unknown dimension {name!r}; allowed: {', '.join(CONFIG_KEYS)}")
    spec = _mapping(spec, where)
    unknown = sorted(set(spec) - set(_DIMENSION_FIELDS))
    if unknown:
        raise UserError(f"{where}: unknown field {unknown[0]!r}; allowed: {', '.join(_DIMENSION_FIELDS)}")
    when = {k: tuple(_list(v, f"{where}.when.{k}")) for k, v in _mapping(spec.get("when", {}), f"{where}.when").items()}
    if "choices" in spec:
        if {"low", "high", "log", "step"} & set(spec):
            raise UserError(f"{where}: give either choices or low/high, not both")
        choices = tuple(_choice(name, c) for c in _list(spec["choices"], f"{where}.choices"))
        if not choices:
            raise UserError(f"{where}.choices: empty; give at least one value")
        repeated = [c for i, c in enumerate(choices) if c in choices[:i]]
        if repeated:
            raise UserError(f"{where}.choices: {repeated[0]!r} is given twice")
        for value in choices:
            try:
                check_value(name, value)
            except UserError as error:
                raise UserError(f"{where}.choices: value {value!r} is not allowed: {error}") from None
        return Dimension(name, choices=choices, when=when)
    low, high = (yaml_number(spec.get(k)) for k in ("low", "high"))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)) \
            or low >= high:
        raise UserError(f"{where}: needs choices, or numbers low < high; got low={low!r}, high={high!r}")
    if spec.get("log") and low <= 0:
        raise UserError(f"{where}: log: true needs low > 0, got low={low!r}")
    for value in (low, high):
        try:
            check_value(name, value)
        except UserError as error:
            raise UserError(f"{where}: bound {value!r} is not allowed: {error}") from None
    if name not in _FLOAT_KEYS and name not in _INT_KEYS:
        raise UserError(f"{where}: {name} takes choices, not a numeric range")
    log, step = spec.get("log", False), _step(name, spec, where)
    if name in _INT_KEYS:  # a handful of sizes: each must be a value of the key (pull sizes are odd)
        for value in itertools.islice(range(int(low), int(high) + 1, int(step or 1)), 1000):
            try:
                check_value(name, value)
            except UserError as error:
                raise UserError(f"{where}: the range holds {value}, which is not allowed: {error}; "
                                f"narrow it or give a step") from None
    return Dimension(name, low=low, high=high, log=log, step=step, when=when, integer=name in _INT_KEYS)


def _choice(name: str, value: Any) -> Any:
    """A choice as the key's type: YAML reads 1e-3 as text and 2 as an integer for a float key."""
    if name in _FLOAT_KEYS:
        value = yaml_number(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
    return value


def _step(name: str, spec: Mapping[str, Any], where: str) -> float | int | None:
    """A range's ``step`` (None: continuous, or every integer), checked with ``log``."""
    log, step = spec.get("log", False), yaml_number(spec.get("step"))
    if not isinstance(log, bool):
        raise UserError(f"{where}.log: must be true or false, got {log!r}")
    if step is None:
        return None
    integer_key = name in _INT_KEYS
    if isinstance(step, bool) or not isinstance(step, int if integer_key else (int, float)) \
            or not math.isfinite(step) or step <= 0:
        kind = "an integer" if integer_key else "a number"
        raise UserError(f"{where}.step: must be {kind} > 0, got {step!r}")
    if log:
        raise UserError(f"{where}: give log: true or a step, not both (a log scale has no fixed step)")
    return step


def _check_conditions(dimensions: tuple[Dimension, ...], defaults: Mapping[str, Any], where: str) -> None:
    """Every ``when:`` names a key before its dimension, with values that key can take: a
    dimension's choices, or the default of a key the space does not search (else the dependent
    dimension could never be active)."""
    seen: dict[str, Dimension] = {}
    names = {d.name for d in dimensions}
    for dim in dimensions:
        for parent, values in dim.when.items():
            at = f"{where}: dimensions.{dim.name}.when"
            if parent not in CONFIG_KEYS:
                raise UserError(f"{at}: unknown key {parent!r}; allowed: {', '.join(CONFIG_KEYS)}")
            if parent in names and parent not in seen:
                raise UserError(f"{where}: dimensions.{dim.name}.when names {parent!r}, which must come "
                                 f"before {dim.name!r} in the file")
            if parent in seen and seen[parent].choices is not None:
                unknown = [v for v in values if v not in seen[parent].choices]
                if unknown:
                    raise UserError(f"{at}.{parent}: {unknown[0]!r} is not one of {parent}'s choices "
                                    f"({', '.join(map(str, seen[parent].choices))})")
            elif parent not in names:
                fixed = defaults.get(parent, KEYS[parent].default)
                if fixed not in values:
                    raise UserError(f"{at}.{parent}: the space does not search {parent}, which stays {fixed!r}: "
                                    f"{dim.name} would never be searched")
        seen[dim.name] = dim


def _check_reachable(space: Space, config: Mapping[str, Any], where: str) -> None:
    """A paper configuration must be a point of the space: inside the domains of its active
    dimensions, and equal to the defaults everywhere else."""
    point = space.search_point(config)
    full = space.full(config)
    for dim in space.dimensions:
        if dim.name in point and not dim.contains(point[dim.name]):
            raise UserError(f"{where}: {dim.name}={point[dim.name]!r} is outside the space's "
                             f"dimension ({dim.describe()})")
    rebuilt = space.full(point)
    for key, value in full.items():
        if rebuilt.get(key) != value:
            raise UserError(f"{where}: {key}={value!r} cannot be reached: {key} is not an active "
                             f"dimension for this configuration and its default is {rebuilt.get(key)!r}")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise UserError(f"{where} must be a mapping, got {value!r}")
    return dict(value)


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise UserError(f"{where} must be a list, got {value!r}")
    return value

