"""carafe-inpaint-make-data: writes the seeded evaluation mask set, binned by hole coverage (DATASETS.VAL_MASKS),
and, with --photographs DIR, the embedded photographs as DIR/train and DIR/val (DATASETS.TRAIN / VAL). See
carafe_inpaint.data.mask_set: the bins 10-20%, ..., 50-60% take turns, so a --count that is a multiple of 5 fills
them equally; stats.json records each mask's bin.

    carafe-inpaint-make-data --output datasets/places365/val_masks --count 36500 --size 256 --seed 2019
    carafe-inpaint-make-data --output masks/ --count 100 --photographs photos/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from carafe_engine import CommandLineParser, report_user_errors

from ..data.mask_set import write_mask_set, write_photographs


def main(argv=None) -> int:
    parser = CommandLineParser(prog="carafe-inpaint-make-data", description=__doc__.split("\n\n")[0], epilog=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True, help="folder for the mask PNGs (DATASETS.VAL_MASKS)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256, help="masks are size x size")
    parser.add_argument("--seed", type=int, default=2019)
    parser.add_argument("--photographs", type=Path, default=None, help="also write the embedded photographs here")
    args = parser.parse_args(argv)
    return report_user_errors("carafe-inpaint-make-data", lambda: make_data(args))


def make_data(args) -> None:
    stats = write_mask_set(args.output, args.count, args.size, args.seed)
    print(f"wrote {stats['count']} masks of {stats['size']}x{stats['size']} to {args.output}/ "
          f"(hole fraction {100 * stats['hole_fraction_mean']:.1f}% +- {100 * stats['hole_fraction_std']:.1f}%; masks "
          f"per coverage bin: {', '.join(f'{label} {n}' for label, n in stats['masks_per_bin'].items())})")
    if args.photographs is not None:
        written = write_photographs(args.photographs)
        print(f"wrote {written['train']} training and {written['val']} validation photographs to {args.photographs}/")


if __name__ == "__main__":
    raise SystemExit(main())
