"""carafe-seg-predict: images in, colour-coded segmentations out; with two checkpoints, the paper's Figure 3.

    carafe-seg-predict --weights output/carafe/model_final.pth --input photo.jpg more/ --output predictions/
    carafe-seg-predict --weights baseline.pth carafe.pth --input ADEChallengeData2016/images/validation \\
        --annotations ADEChallengeData2016/annotations/validation --limit 8 --output figure3/

Checkpoints carry their config, so no config file is needed; images are segmented at the checkpoint's test size
(INPUT.TEST_SHORT_SIZE / TEST_MAX_SIZE) and the result is brought back to the image's size. For each image and
checkpoint it writes <stem>_<tag>.png (colour-coded) and <stem>_<tag>_labels.png (uint8 labels 1..150); with
--annotations the ground truth joins the figure; figure.png shows every image in rows with the columns input,
ground truth, then one per checkpoint (the paper's Figure 3 when the checkpoints are baseline and CARAFE).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import torch
from carafe_engine import checkpoint_labels, load_checkpoint
from PIL import Image

from .config import UPSAMPLER_PLACES, config_from_checkpoint
from .data.ade20k import IMAGE_SUFFIXES, class_names, read_annotation, read_image
from .data.transforms import normalize, resize_image, scaled_size
from .model import build_model
from .train import CHECKPOINT_KIND
from .visualize import colorize, comparison_figure


def describe_upsamplers(cfg) -> str:
    """'bilinear', 'CARAFE', or e.g. 'CARAFE (PPM, FUSION)'."""
    places = [p for p in UPSAMPLER_PLACES if cfg.MODEL.UPSAMPLER[p] == "carafe"]
    if not places:
        return "bilinear"
    return "CARAFE" if len(places) == len(UPSAMPLER_PLACES) else f"CARAFE ({', '.join(places)})"


def load_predictor(path: str | Path, device: torch.device):
    """(model in eval mode, its config) from a carafe-seg checkpoint."""
    state = load_checkpoint(path, kind=CHECKPOINT_KIND)
    cfg = config_from_checkpoint(state, str(path))
    cfg.MODEL.BACKBONE.WEIGHTS = ""  # the checkpoint holds every weight; the ImageNet file need not exist here
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg


@torch.no_grad()
def segment_image(model, cfg, image: np.ndarray, device: torch.device) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 labels 1..NUM_CLASSES."""
    height, width = image.shape[:2]
    resized = resize_image(image, scaled_size(height, width, cfg.INPUT.TEST_SHORT_SIZE, cfg.INPUT.TEST_MAX_SIZE))
    batch = normalize(resized, cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD)[None].to(device)
    logits = model.segment(batch, output_size=(height, width))
    return (logits.argmax(1)[0] + 1).to(torch.uint8).cpu().numpy()


def collect_images(inputs: list[Path]) -> list[Path]:
    images = []
    for path in inputs:
        if path.is_dir():
            images += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            images.append(path)
        else:
            raise FileNotFoundError(f"--input: {path} does not exist")
    if not images:
        raise FileNotFoundError(f"--input: no images ({'/'.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, inputs))}")
    return images


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="carafe-seg-predict", description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="+", required=True, type=Path, metavar="CHECKPOINT",
                        help="one or more carafe-seg checkpoints (two: baseline then CARAFE, for Figure 3)")
    parser.add_argument("--input", nargs="+", required=True, type=Path, help="images or folders of images")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--annotations", type=Path, default=None,
                        help="folder of ground-truth PNGs named like the images (shown in the figure)")
    parser.add_argument("--titles", nargs="+", default=None, help="column titles of the checkpoints")
    parser.add_argument("--limit", type=int, default=0, help="segment at most this many images (0 = all)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.titles and len(args.titles) != len(args.weights):
        parser.error(f"--titles: {len(args.titles)} titles for {len(args.weights)} checkpoints")
    if args.annotations is not None and not args.annotations.is_dir():
        parser.error(f"--annotations: {args.annotations} is not a folder")

    device = torch.device(args.device)
    predictors = [load_predictor(path, device) for path in args.weights]
    titles = args.titles or [describe_upsamplers(cfg) for _, cfg in predictors]
    if len(set(titles)) < len(titles):  # checkpoints of the same kind: tell them apart by their paths
        titles = [f"{title} [{label}]" for title, label in zip(titles, checkpoint_labels(args.weights))]
    num_classes = predictors[0][1].DATASET.NUM_CLASSES
    images = collect_images(args.input)[: args.limit or None]
    args.output.mkdir(parents=True, exist_ok=True)

    rows = []
    for path in images:
        image = read_image(path)
        row = {"input": image}
        if args.annotations is not None and (args.annotations / f"{path.stem}.png").is_file():
            row["ground truth"] = read_annotation(args.annotations / f"{path.stem}.png", num_classes)
        for (model, cfg), title in zip(predictors, titles):
            labels = segment_image(model, cfg, image, device)
            tag = re.sub("_+", "_", "".join(ch if ch.isalnum() else "_" for ch in title)).strip("_").lower()
            Image.fromarray(colorize(labels, num_classes)).save(args.output / f"{path.stem}_{tag}.png")
            Image.fromarray(labels, mode="L").save(args.output / f"{path.stem}_{tag}_labels.png")
            row[title] = labels
        rows.append(row)
    columns = ["input"] + (["ground truth"] if any("ground truth" in r for r in rows) else []) + titles
    # class names from the dataset the annotations belong to (ROOT/annotations/<split>), if it has them
    names = class_names(args.annotations.parent.parent if args.annotations else Path(), num_classes)
    figure = comparison_figure(rows, columns, args.output / "figure.png", num_classes, names=names)
    print(f"segmented {len(images)} image(s) with {len(predictors)} checkpoint(s) into {args.output}; figure: {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
