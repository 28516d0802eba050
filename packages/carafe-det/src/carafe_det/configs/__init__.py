"""The shipped configs, found by path whether carafe-det is installed or run from a checkout."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent


def config_path(name: str) -> Path:
    """configs/<name> inside the package, e.g. config_path('torchvision/mask_rcnn_R_50_FPN_carafe_1x.yaml')."""
    path = CONFIG_DIR / name
    if not path.is_file():
        shipped = sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*.yaml"))
        raise FileNotFoundError(f"no shipped config {name!r}; shipped: {', '.join(shipped)}")
    return path
