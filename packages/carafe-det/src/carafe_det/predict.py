"""carafe-det-predict: images in, pictures out (boxes, masks and class names drawn), from one model or from two side
by side (baseline | CARAFE, as the paper's Figure 2).

    carafe-det-predict --checkpoint out/baseline/model_final.pth --checkpoint out/carafe/model_final.pth \\
        --titles "Mask R-CNN" "Mask R-CNN w/ CARAFE" --input images/ --output pictures/

A torchvision-engine checkpoint carries its config. For detectron2 weights also give the config file, once per
checkpoint in the same order: --config-file detectron2/mask_rcnn_R_50_FPN_carafe_1x.yaml.
Writes OUTPUT/<image name>.png per image and OUTPUT/predictions.json (every detection above --score-thresh).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from carafe_engine import checkpoint_labels, report_user_errors

from .data.coco_folder import DatasetError, read_image
from .drawing import save_detections
from .inference import load_predictor

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(inputs: list[str]) -> list[Path]:
    """Files as given; folders expanded to their images (sorted). DatasetError for a path that does not exist."""
    images = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DatasetError(f"--input {path}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            images += found
        elif path.is_file():
            images.append(path)
        else:
            raise DatasetError(f"--input {path}: no such file or folder")
    return images


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="carafe-det-predict", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", required=True,
                        help="model weights; give it twice for a side-by-side comparison")
    parser.add_argument("--config-file", action="append", default=None,
                        help="config per checkpoint (needed for detectron2 weights)")
    parser.add_argument("--titles", nargs="+", default=None, help="a title per checkpoint")
    parser.add_argument("--input", nargs="+", required=True, help="image files or folders")
    parser.add_argument("--output", type=Path, required=True, help="folder for the pictures")
    parser.add_argument("--score-thresh", type=float, default=0.5, help="draw detections at or above this score")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                        help="config overrides for every model")
    args = parser.parse_args(argv)
    if len(args.checkpoint) > 2:
        parser.error("give one checkpoint, or two to compare")
    configs = args.config_file or [None] * len(args.checkpoint)
    if len(configs) != len(args.checkpoint):
        parser.error(f"{len(configs)} --config-file for {len(args.checkpoint)} --checkpoint: give one per checkpoint")
    titles = args.titles or checkpoint_labels(args.checkpoint)
    if len(titles) != len(args.checkpoint):
        parser.error(f"{len(titles)} --titles for {len(args.checkpoint)} --checkpoint")
    return report_user_errors("carafe-det-predict", lambda: predict(args, configs, titles))


def predict(args, configs, titles) -> int:
    images = list_images(args.input)
    predictors = [load_predictor(c, f, args.opts, args.device) for c, f in zip(args.checkpoint, configs)]
    args.output.mkdir(parents=True, exist_ok=True)
    records = []
    for path in images:
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
