"""Search spaces: YAML files naming a dataset, the defaults of every trial and the papers' fixed
configurations. ``resnet-cifar`` and the other embedded spaces live in the top-level
``search_spaces/`` folder; any path to a user's YAML file works too.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .data import DATASETS
from .trial import CONFIG_KEYS, TrialConfig

SPACES_DIR = Path(__file__).resolve().parents[1] / "search_spaces"
FIELDS = ("name", "description", "dataset", "defaults", "paper_configs")
PAPER_PREFIX = "paper:"


@dataclasses.dataclass(frozen=True)
class Space:
    name: str
    description: str
    dataset: str
    defaults: dict[str, Any]
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


def spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def load_space(name_or_path: str | Path) -> Space:
    """An embedded space by name, or a YAML file by path."""
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
    if not isinstance(raw, dict):
        raise ValueError(f"space file {path} must hold a mapping with fields {', '.join(FIELDS)}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise ValueError(f"space {path.name}: unknown field {unknown[0]!r}; allowed: {', '.join(FIELDS)}")
    dataset = raw.get("dataset", "cifar10")
    if dataset not in DATASETS:
        raise ValueError(f"space {path.name}: dataset {dataset!r} is not one of {', '.join(DATASETS)}")
    defaults = _mapping(raw.get("defaults", {}), f"space {path.name}: defaults")
    presets = _mapping(raw.get("paper_configs", {}), f"space {path.name}: paper_configs")
    for name, preset in {"defaults": {}, **presets}.items():
        config = {**defaults, **_mapping(preset, f"space {path.name}: paper_configs.{name}")}
        try:
            TrialConfig.create(config, dataset=dataset, budget="smoke")
        except ValueError as error:
            where = "defaults" if name == "defaults" else f"paper_configs.{name}"
            raise ValueError(f"space {path.name}: {where}: {error}") from None
    return Space(raw.get("name", path.stem), raw.get("description", ""), dataset, defaults, presets, path)


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
    if float in expected and isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            value = float(value)
        except ValueError:
            pass
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


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a mapping, got {value!r}")
    return dict(value)
