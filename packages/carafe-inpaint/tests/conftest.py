"""Shared helpers: the tiny settings that keep end-to-end runs to seconds, running the commands in a subprocess, and
small image folders written on the fly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# tiny_* configs made smaller still: 32x32 views, width 8, batch 4, a handful of iterations
FAST = ["DATASETS.IMAGE_SIZE", "32", "MODEL.WIDTH", "8", "MODEL.CARAFE.COMPRESSED_CHANNELS", "8", "DISCRIMINATOR.WIDTH",
        "8", "SOLVER.IMS_PER_BATCH", "4", "DATASETS.VAL_MASKS_PER_IMAGE", "2", "TEST.IMS_PER_BATCH", "6",
        "SOLVER.LOG_PERIOD", "2"]


def run_command(module: str, *args: str, timeout: float = 300, threads: int = 1) -> subprocess.CompletedProcess:
    """python -m module args..., captured; one thread per process so parallel runs do not oversubscribe the CPU."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def start_command(module: str, *args: str, threads: int = 1) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", module, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def write_photo_folder(folder: Path, count: int = 3, size: tuple[int, int] = (48, 40), seed: int = 0) -> list[Path]:
    """Smooth random colour images (gradients plus a disc), as PNG and JPEG."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    for i in range(count):
        base = rng.uniform(0, 255, 3)
        image = base + rng.uniform(-1, 1, 3) * (xx[..., None] + yy[..., None])
        cy, cx = rng.integers(0, size[0]), rng.integers(0, size[1])
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = rng.uniform(0, 255, 3)
        path = folder / f"img_{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    write_photo_folder(tmp_path / "photos")
    return tmp_path / "photos"
