"""carafe-det-predict: images in, pictures out (boxes, masks and class names drawn), from one model or from two side
by side (baseline | CARAFE, as the paper's Figure 2).

    carafe-det-predict --weights out/baseline/model_final.pth out/carafe/model_final.pth \\
        --titles "Mask R-CNN" "Mask R-CNN w/ CARAFE" --input images/ --output pictures/

A torchvision-engine checkpoint carries its config. For detectron2 weights also give the config file, once per
checkpoint in the same order: --config-file detectron2/mask_rcnn_R_50_FPN_carafe_1x.yaml.
Writes OUTPUT/<image name>.png per image and OUTPUT/predictions.json (every detection above --score-thresh).
"""

from __future__ import annotations

import argparse
import json

from carafe_engine import (checkpoint_labels, list_images, predict_argument_parser, progress_bar, read_image,
                           report_user_errors)

from ..inference import load_predictor
from ..visualization import save_detections

def main(argv=None) -> int:
    parser = predict_argument_parser("carafe-det-predict", __doc__)
    parser.add_argument("--config-file", nargs="+", default=None,
                        help="a config per checkpoint, in the same order (needed for detectron2 weights)")
    parser.add_argument("--score-thresh", type=float, default=0.5, help="draw detections at or above this score")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                        help="config overrides for every model")
    args = parser.parse_args(argv)
    if len(args.weights) > 2:
        parser.error("--weights: give one checkpoint, or two to compare")
    configs = args.config_file or [None] * len(args.weights)
    if len(configs) != len(args.weights):
        parser.error(f"{len(configs)} --config-file for {len(args.weights)} --weights: give one per checkpoint")
    titles = args.titles or checkpoint_labels(args.weights)
    return report_user_errors("carafe-det-predict", lambda: predict(args, configs, titles))


def predict(args, configs, titles) -> int:
    images = list_images(args.input)[: args.limit or None]
    predictors = [load_predictor(c, f, args.opts, args.device) for c, f in zip(args.weights, configs)]
    args.output.mkdir(parents=True, exist_ok=True)
    records = []
    for path in progress_bar(images, "detecting"):
        image = read_image(path)
        panels = [(title, predictor(image).above(args.score_thresh)) for title, predictor in zip(titles, predictors)]
        picture = save_detections([(image, panels)], args.output / f"{path.stem}.png")
        records.append({"image": str(path), "picture": str(picture),
                        "models": {title: detections.to_json() for title, detections in panels}})
        print(f"{path} -> {picture}: " + ", ".join(f"{t} {len(d.scores)} detections" for t, d in panels))
    (args.output / "predictions.json").write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
