"""carafe-det-visualize: the paper's Figure 1 for a trained CARAFE model: for example locations of an FPN level,
the units of the level above that CARAFE reassembles into each, coloured by their weights, on the image.

    carafe-det-visualize --weights out/carafe/model_final.pth --input image.jpg --output figure1.png \\
        [--level 0] [--points 120,80 200,150]

Without --points the locations are the centres and left edges of the model's top detections.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from carafe_engine import CommandLineParser, read_image, report_user_errors

from ..inference import TorchvisionPredictor
from ..reassembly import default_points, model_reassembly, reassembly_figure


def parse_point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a point is X,Y in image pixels, got {text!r}") from None
    return x, y


def main(argv=None) -> int:
    parser = CommandLineParser(prog="carafe-det-visualize", description=__doc__.split("\n\n")[0],
                               epilog=__doc__.split("\n\n", 1)[1],
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="a CARAFE model's torchvision-engine checkpoint")
    parser.add_argument("--input", required=True, help="an image")
    parser.add_argument("--output", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--level", type=int, default=0, help="FPN level the CARAFE upsamples into (0: P2)")
    parser.add_argument("--points", nargs="+", type=parse_point, default=None, help="X,Y locations in image pixels")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    return report_user_errors("carafe-det-visualize", lambda: visualize(args))


def visualize(args) -> int:
    predictor = TorchvisionPredictor(args.weights, device=args.device)
    image = read_image(args.input)
    points = args.points or default_points(predictor, image)
    reassembly, scale = model_reassembly(predictor, image, args.level)
    reassembly_figure(image, reassembly, points, args.output, scale,
                      title=f"CARAFE into P{args.level + 2}: units of P{args.level + 3} reassembled into each location")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
