"""The generated evaluation data, on disk: a fixed set of free-form masks (DATASETS.VAL_MASKS) and the embedded
photographs as image folders (DATASETS.TRAIN / DATASETS.VAL). Mask i is the free-form mask seeded by (seed, i): the
same files on every machine, and a set of 100 masks is the first 100 of the set of 36500. Files: mask_00000.png,
... (8-bit, 255 = hole) and stats.json (hole fraction: mean, standard deviation, quantiles)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from carafe_engine import ConfigError, progress_bar

from .embedded import photographs
from .images import write_image, write_mask
from .masks import seeded_mask


def write_mask_set(output: str | Path, count: int, size: int = 256, seed: int = 2019) -> dict:
    if count < 1:
        raise ConfigError(f"--count must be >= 1, got {count}")
    if size < 4:
        raise ConfigError(f"--size must be >= 4, got {size}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    digits = max(5, len(str(count - 1)))
    fractions = np.empty(count)
    for index in progress_bar(range(count), "masks"):
        mask = seeded_mask(size, size, seed, index)
        write_mask(output / f"mask_{index:0{digits}d}.png", mask)
        fractions[index] = mask.mean()
    stats = {"count": count, "size": size, "seed": seed, "hole_fraction_mean": float(fractions.mean()),
             "hole_fraction_std": float(fractions.std()),
             "hole_fraction_quantiles": {str(q): float(np.quantile(fractions, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)}}
    (output / "stats.json").write_text(json.dumps(stats, indent=2))
    return stats


def write_photographs(output: str | Path) -> dict[str, int]:
    """The embedded photographs as output/train/<name>.png and output/val/<name>.png (folders DATASETS.TRAIN and
    DATASETS.VAL can name); the number written per split."""
    written = {}
    for split in ("train", "val"):
        photos = photographs(split)
        for name, image in photos:
            write_image(Path(output) / split / f"{name}.png", image)
        written[split] = len(photos)
    return written
