"""The fixed evaluation mask set, binned by hole coverage as inpainting papers report it, and the generated data on
disk (DATASETS.VAL_MASKS, and the embedded photographs as image folders for DATASETS.TRAIN / DATASETS.VAL).

The bins are COVERAGE_BINS: hole fractions 10-20%, 20-30%, 30-40%, 40-50%, 50-60% (lower end included). The set of
seed s is drawn from the training masks' stream (``seeded_mask(S, S, s, i)``, candidates i = 0, 1, 2, ...): each
candidate goes to the bin of its coverage (candidates outside every bin are skipped), and entry j of the set is the
(j // 5)-th candidate of bin j % 5. So the bins take turns (a set of 5n masks holds n per bin, and any run of 5
consecutive entries holds one of each: images that get consecutive masks see every bin), the set is a pure function
of (size, seed) on every machine, and the set of 100 masks is the first 100 of the set of 36500.

The training masks rarely cover 50-60% of the image (0.4% of them at 256x256; 2.6% fall in 10-20%), so that bin sets
the pace: the set of 100 masks of seed 2019 at 256x256 draws 3731 candidates (about 5 s on one CPU core), and the
36500 masks of Places365 val take about 15 minutes. The in-memory set of the tiny configs (45 masks of 64x64) draws
3600 candidates, about 2 s.

Files (carafe-inpaint-make-data): mask_00000.png, ... (8-bit, 255 = hole) and stats.json: count, size, seed, the
number of candidates drawn, masks per bin, the hole fraction's mean, standard deviation and quantiles, and per mask
its file, bin, hole fraction and candidate index. Evaluation recomputes each mask's bin from its pixels
(`coverage_bin`), so any mask folder can be scored per bin.
"""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path

import numpy as np
from carafe_engine import ConfigError, progress_bar

from .embedded import photographs
from .images import write_image, write_mask
from .masks import seeded_mask

COVERAGE_BINS = ((10, 20), (20, 30), (30, 40), (40, 50), (50, 60))  # percent of the image that is hole
BIN_LABELS = tuple(f"{low}-{high}%" for low, high in COVERAGE_BINS)
CANDIDATES_PER_MASK = 5000  # the most candidates drawn per mask of a bin before giving up on that bin


def coverage_bin(hole_pixels: int, pixels: int) -> int:
    """The index in COVERAGE_BINS of a hole of `hole_pixels` out of `pixels`, or -1 outside every bin; exact
    (integer) arithmetic, so a mask's bin is the same wherever it is computed."""
    for index, (low, high) in enumerate(COVERAGE_BINS):
        if low * pixels <= 100 * hole_pixels < high * pixels:
            return index
    return -1


def mask_bin(mask: np.ndarray) -> int:
    return coverage_bin(int(np.count_nonzero(mask)), mask.size)


def _candidates():
    """0, 1, 2, ...; large sets take minutes (36500 masks of 256x256: about 15), so after the first
    CANDIDATES_PER_MASK (within which a size too small for a bin has failed) a progress bar, once it has run 2 s."""
    yield from range(CANDIDATES_PER_MASK)
    yield from progress_bar(itertools.count(CANDIDATES_PER_MASK), "drawing mask candidates", delay=2)


@functools.lru_cache(maxsize=8)
def binned_candidates(size: int, seed: int, count: int) -> tuple[int, ...]:
    """The candidate index (in seeded_mask(size, size, seed, ·)) of each of the `count` entries of the binned set."""
    if count < 1:
        raise ConfigError(f"the mask set needs a count >= 1, got {count}")
    needed = [len(range(b, count, len(COVERAGE_BINS))) for b in range(len(COVERAGE_BINS))]
    found: list[list[int]] = [[] for _ in COVERAGE_BINS]
    limit = CANDIDATES_PER_MASK * max(needed)
    for candidate in _candidates():
        if all(len(f) == n for f, n in zip(found, needed)):
            break
        if candidate == limit:
            short = [BIN_LABELS[b] for b, (f, n) in enumerate(zip(found, needed)) if len(f) < n]
            raise ConfigError(f"{size}x{size} masks of seed {seed}: {limit} candidates did not fill the coverage "
                              f"bin(s) {', '.join(short)}; use a larger size")
        b = mask_bin(seeded_mask(size, size, seed, candidate))
        if b >= 0 and len(found[b]) < needed[b]:
            found[b].append(candidate)
    return tuple(found[j % len(COVERAGE_BINS)][j // len(COVERAGE_BINS)] for j in range(count))


def write_mask_set(output: str | Path, count: int, size: int = 256, seed: int = 2019) -> dict:
    if count < 1:
        raise ConfigError(f"--count must be >= 1, got {count}")
    if size < 4:
        raise ConfigError(f"--size must be >= 4, got {size}")
    candidates = binned_candidates(size, seed, count)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    digits = max(5, len(str(count - 1)))
    fractions, records = np.empty(count), []
    for index in progress_bar(range(count), "masks"):
        mask = seeded_mask(size, size, seed, candidates[index])
        name = f"mask_{index:0{digits}d}.png"
        write_mask(output / name, mask)
        fractions[index] = np.count_nonzero(mask) / mask.size
        records.append({"file": name, "bin": BIN_LABELS[mask_bin(mask)], "hole_fraction": fractions[index],
                        "candidate": candidates[index]})
    stats = {"count": count, "size": size, "seed": seed, "candidates_drawn": max(candidates) + 1,
             "masks_per_bin": {label: sum(r["bin"] == label for r in records) for label in BIN_LABELS},
             "hole_fraction_mean": float(fractions.mean()), "hole_fraction_std": float(fractions.std()),
             "hole_fraction_quantiles": {str(q): float(np.quantile(fractions, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
             "masks": records}
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
