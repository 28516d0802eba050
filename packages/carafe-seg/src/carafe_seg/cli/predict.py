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

import re
from pathlib import Path

from carafe_engine import (checkpoint_labels, list_images, predict_argument_parser, progress_bar, read_image,
                           report_user_errors, select_device)
from PIL import Image

from ..data.ade20k import class_names, read_annotation
from ..config import describe_upsamplers
from ..inference import load_predictor, segment_image
from ..visualization import colorize, comparison_figure


def main(argv=None) -> int:
    parser = predict_argument_parser("carafe-seg-predict", __doc__)
    parser.add_argument("--annotations", type=Path, default=None,
                        help="folder of ground-truth PNGs named like the images (shown in the figure)")
    args = parser.parse_args(argv)
    if args.annotations is not None and not args.annotations.is_dir():
        parser.error(f"--annotations: {args.annotations} is not a folder")
    return report_user_errors("carafe-seg-predict", lambda: predict(args))


def predict(args) -> None:
    device = select_device(args.device, "--device")
    predictors = [load_predictor(path, device) for path in args.weights]
    titles = args.titles or [describe_upsamplers(cfg) for _, cfg in predictors]
    if len(set(titles)) < len(titles):  # checkpoints of the same kind: tell them apart by their paths
        titles = [f"{title} [{label}]" for title, label in zip(titles, checkpoint_labels(args.weights))]
    num_classes = predictors[0][1].DATASETS.NUM_CLASSES
    images = list_images(args.input)[: args.limit or None]
    args.output.mkdir(parents=True, exist_ok=True)

    rows = []
    for path in progress_bar(images, "segmenting"):
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


if __name__ == "__main__":
    raise SystemExit(main())
