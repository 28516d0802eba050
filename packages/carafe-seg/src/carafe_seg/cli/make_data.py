"""carafe-seg-make-data: writes the generated dataset of carafe-seg (synthetic scenes in the ADEChallengeData2016
layout: images/{training,validation}/*.jpg, annotations/{training,validation}/*.png, objectInfo150.txt; see
carafe_seg.data.synthetic)."""

from __future__ import annotations

from pathlib import Path

from carafe_engine import CommandLineParser

from ..data.synthetic import make_synthetic_ade20k


def main(argv=None) -> int:
    parser = CommandLineParser(prog="carafe-seg-make-data", description=__doc__)
    parser.add_argument("--output", type=Path, required=True, help="the dataset folder to write (DATASETS.ROOT)")
    parser.add_argument("--train", type=int, default=96, help="training images")
    parser.add_argument("--val", type=int, default=24, help="validation images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-size", type=int, default=64)
    parser.add_argument("--max-size", type=int, default=128)
    args = parser.parse_args(argv)
    make_synthetic_ade20k(args.output, args.train, args.val, args.seed, args.min_size, args.max_size)
    print(f"wrote {args.train} training and {args.val} validation scenes to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
