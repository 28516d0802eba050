"""The shipped configs, found by path whether carafe-det is installed or run from a checkout, and which engine
reads a config file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml
from carafe_engine import resolve_config_file

CONFIG_DIR = Path(__file__).resolve().parent


def resolve_config_path(path: str | Path | None) -> str | None:
    """A path as given, or else the shipped config of that name (configs/<path>, e.g.
    'torchvision/mask_rcnn_R_50_FPN_carafe_1x.yaml'); None stays None."""
    return None if path is None else str(resolve_config_file(path, CONFIG_DIR))


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
