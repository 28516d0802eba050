"""YAML configs: nested mappings with upper-case keys, `_BASE_` inheritance, `KEY VALUE` overrides.

A package defines its defaults as a nested dict; a YAML file may only set keys the defaults have (an unknown key
is a ConfigError naming it and the file), and `_BASE_: other.yaml` (relative to the file) is applied first.
Overrides from the command line are dotted keys with YAML-parsed values: `SOLVER.LR 0.01 MODEL.UPSAMPLER carafe`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

import yaml


class ConfigError(ValueError):
    """A config file or override that does not fit the defaults."""


class Config(dict):
    """A nested dict with attribute access (cfg.SOLVER.LR) that refuses keys its defaults do not have."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    @staticmethod
    def wrap(value: Any) -> Any:
        if isinstance(value, dict):
            return Config({k: Config.wrap(v) for k, v in value.items()})
        return value

    def to_dict(self) -> dict:
        return {k: v.to_dict() if isinstance(v, Config) else copy.deepcopy(v) for k, v in self.items()}

    def dump(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _merge(target: Config, updates: dict, where: str, prefix: str = "") -> None:
    for key, value in updates.items():
        dotted = f"{prefix}{key}"
        if key not in target:
            known = ", ".join(sorted(target)) or "none"
            raise ConfigError(f"{where}: unknown config key {dotted!r} (known at this level: {known})")
        if isinstance(target[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {dotted!r} is a section; expected a mapping, got {value!r}")
            _merge(target[key], value, where, dotted + ".")
        else:
            target[key] = _coerce(target[key], value, dotted, where)


def _coerce(default: Any, value: Any, key: str, where: str) -> Any:
    """Keeps a key's type: ints become floats where the default is a float; lists stay lists; None is free."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key!r} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key!r} must be a list, got {value!r}")
        return list(value)
    if not isinstance(value, type(default)):
        raise ConfigError(f"{where}: {key!r} must be {type(default).__name__}, got {value!r}")
    return value


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The file's mapping with its _BASE_ chain merged in (base first)."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: _BASE_ cycle through {' -> '.join(str(p) for p in seen)}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping, got {type(data).__name__}")
    base = data.pop("_BASE_", None)
    if base is None:
        return data
    merged = _read_yaml(path.parent / base, seen + (path,))
    _deep_update(merged, data)
    return merged


def _deep_update(target: dict, updates: dict) -> None:
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value


def parse_overrides(opts: Iterable[str]) -> dict:
    """['SOLVER.LR', '0.01', 'MODEL.NAME', 'x'] -> {'SOLVER': {'LR': 0.01}, 'MODEL': {'NAME': 'x'}}."""
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(f"overrides come in KEY VALUE pairs; got an odd number: {opts}")
    nested: dict = {}
    for key, text in zip(opts[::2], opts[1::2]):
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def load_config(defaults: dict, path: str | Path | None = None, opts: Iterable[str] = ()) -> Config:
    """defaults <- the YAML file (with its _BASE_ chain) <- KEY VALUE overrides."""
    cfg = Config.wrap(copy.deepcopy(defaults))
    if path is not None:
        _merge(cfg, _read_yaml(Path(path)), str(path))
    _merge(cfg, parse_overrides(opts), "command-line override")
    return cfg
