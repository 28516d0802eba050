"""The shipped configs, found by path whether carafe-det is installed or run from a checkout, and which engine
reads a config file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml
from carafe_engine import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent


def config_path(name: str) -> Path:
    """configs/<name> inside the package, e.g. config_path('torchvision/mask_rcnn_R_50_FPN_carafe_1x.yaml')."""
    path = CONFIG_DIR / name
    if not path.is_file():
        shipped = sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*.yaml"))
        raise FileNotFoundError(f"no shipped config {name!r}; shipped: {', '.join(shipped)}")
    return path


def resolve_config_path(path: str | None) -> str | None:
    """A path as given, or else the shipped config of that name (configs/<path>)."""
    if path is None or Path(path).is_file():
        return path
    shipped = CONFIG_DIR / path
    if shipped.is_file():
        return str(shipped)
    raise ConfigError(f"config file not found: {path} (nor a shipped config {shipped})")


def declared_engine(path: str | None) -> str | None:
    """The ENGINE a config file (or its _BASE_ chain) declares, if any (torchvision-engine configs do)."""
    seen = set()
    while path is not None and Path(path).resolve() not in seen:
        seen.add(Path(path).resolve())
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError):
            return None  # the engine's own loader reports the problem with the file
        if not isinstance(data, dict):
            return None
        if "ENGINE" in data:
            return data["ENGINE"]
        base = data.get("_BASE_")
        path = str(Path(path).parent / base) if isinstance(base, str) else None
    return None


def detectron2_available() -> bool:
    return importlib.util.find_spec("detectron2") is not None
