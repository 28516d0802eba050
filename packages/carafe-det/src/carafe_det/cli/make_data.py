"""carafe-det-make-data: writes the generated dataset of carafe-det (images of circles, triangles and squares
with their boxes and masks, in COCO's folder layout; see carafe_det.data.shapes)."""

from __future__ import annotations

from pathlib import Path

from carafe_engine import CommandLineParser

from ..data.shapes import CLASSES, make_shapes_dataset


def main(argv=None) -> int:
    parser = CommandLineParser(prog="carafe-det-make-data", description=__doc__)
    parser.add_argument("--output", type=Path, required=True, help="the dataset folder to write")
    parser.add_argument("--train", type=int, default=400, help="training images")
    parser.add_argument("--val", type=int, default=100, help="validation images")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    make_shapes_dataset(args.output, args.train, args.val, args.size, args.seed)
    print(f"wrote {args.output}: {args.train} train and {args.val} val images, classes {', '.join(CLASSES)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
