"""carafe-inpaint-masks: writes a fixed set of free-form masks (Yu et al.) to disk, for evaluations that must use
the same masks every time (DATA.VAL_MASKS).

    carafe-inpaint-masks --output masks/val_256 --count 36500 --size 256 --seed 2019

Mask i is the free-form mask seeded by (seed, i): the same files come out on every machine, and
`--count 100` writes the first 100 masks of the `--count 36500` set. Files: mask_00000.png, ... (8-bit, 255 = hole)
and stats.json (hole fraction: mean, standard deviation, quantiles).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .images import write_mask
from .masks import seeded_mask


def write_mask_set(output: str | Path, count: int, size: int = 256, seed: int = 2019) -> dict:
    if count < 1:
        raise ValueError(f"--count must be >= 1, got {count}")
    if size < 4:
        raise ValueError(f"--size must be >= 4, got {size}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    digits = max(5, len(str(count - 1)))
    fractions = np.empty(count)
    for index in range(count):
        mask = seeded_mask(size, size, seed, index)
        write_mask(output / f"mask_{index:0{digits}d}.png", mask)
        fractions[index] = mask.mean()
    stats = {"count": count, "size": size, "seed": seed, "hole_fraction_mean": float(fractions.mean()),
             "hole_fraction_std": float(fractions.std()),
             "hole_fraction_quantiles": {str(q): float(np.quantile(fractions, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)}}
    (output / "stats.json").write_text(json.dumps(stats, indent=2))
    return stats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="carafe-inpaint-masks", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True, help="folder for the mask PNGs")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256, help="masks are size x size")
    parser.add_argument("--seed", type=int, default=2019)
    args = parser.parse_args(argv)
    try:
        stats = write_mask_set(args.output, args.count, args.size, args.seed)
    except ValueError as error:
        parser.exit(2, f"carafe-inpaint-masks: error: {error}\n")
    print(f"wrote {stats['count']} masks of {stats['size']}x{stats['size']} to {args.output}/ "
          f"(hole fraction {100 * stats['hole_fraction_mean']:.1f}% +- {100 * stats['hole_fraction_std']:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
