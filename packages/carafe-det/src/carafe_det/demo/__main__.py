"""python -m carafe_det.demo --output DIR: the detection experiment of the CARAFE paper in miniature, on a CPU.

Generates a COCO-format shapes dataset, trains the tiny Mask R-CNN baseline (nearest-neighbour FPN, deconvolution
mask head) and the tiny Mask R-CNN with CARAFE (FPN_CARAFE and the CARAFE mask head) side by side with
carafe-det-train (two processes of one thread each), evaluates an untrained model for reference, and writes:

    metrics.json, summary.md       box and mask AP (COCO, pycocotools) of untrained, baseline and CARAFE models
    detections.png                 baseline | CARAFE on validation images (the paper's Figure 2)
    reassembly.png                 what CARAFE reassembles into chosen P2 locations (the paper's Figure 1)
    training_curves.png            the two models' losses
    baseline/, carafe/, untrained/ the training runs (checkpoints, logs, metrics.jsonl, eval.json)
    data/shapes/                   the generated dataset

It exits with status 1 if the CARAFE model's box or mask AP50 is not at least 20 points above the untrained one's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from carafe_engine import plot_training_curves, read_image
from carafe_engine.demo import demo_argument_parser, markdown_table, train_side_by_side, write_summary

from ..configs import resolve_config_path
from ..data.shapes import make_shapes_dataset
from ..visualization import save_detections
from ..inference import TorchvisionPredictor
from ..reassembly import model_reassembly, reassembly_figure
from ..torchvision_engine import CocoDetectionDataset, DetectionTrainer, load_torchvision_config

MODELS = {"baseline": "torchvision/tiny_shapes_mask_rcnn.yaml",
          "carafe": "torchvision/tiny_shapes_mask_rcnn_carafe.yaml"}
TITLES = {"baseline": "Mask R-CNN (nearest FPN, deconv mask head)", "carafe": "Mask R-CNN w/ CARAFE"}
# mmdetection v2 model zoo, COCO val2017 (mask_rcnn_r50_fpn_1x_coco, mask_rcnn_r50_fpn_carafe_1x_coco)
MODEL_ZOO = {"baseline": {"bbox": 38.2, "segm": 34.7}, "carafe": {"bbox": 39.3, "segm": 35.8}}
LEARNED_MARGIN = 20.0  # AP50 points above the untrained model that count as "learned"


def run_opts(data: Path, output: Path, opts: list[str]) -> list[str]:
    return ["DATASETS.ROOT", str(data), "OUTPUT_DIR", str(output), *opts]


def gt_points(dataset: CocoDetectionDataset, index: int) -> list[tuple[float, float]]:
    """For each object of a validation image: its box centre and the middle of its mask's left edge."""
    _, target = dataset[index]
    points = []
    for box, mask in zip(target["boxes"], target["masks"]):
        x0, y0, x1, y1 = box.tolist()
        cy = int((y0 + y1) / 2)
        row = torch.nonzero(mask[cy])
        points += [((x0 + x1) / 2, (y0 + y1) / 2), (float(row.min()) + 0.5 if len(row) else x0, cy + 0.5)]
    return points[:4]


def summary_lines(metrics: dict, args) -> list[str]:
    lines = ["# carafe-det demo: tiny Mask R-CNN, baseline vs CARAFE", "",
             f"Generated shapes dataset ({args.train} training, {args.val} validation images of {args.size} px, "
             f"3 classes); tiny Mask R-CNN (narrow ResNet, 32-channel FPN) trained from scratch on the CPU, "
             f"{metrics['iterations']} iterations of 8 images; COCO evaluation (pycocotools) on the validation "
             f"images. Total time {metrics['seconds'] / 60:.1f} min.", ""]
    aps = [(kind, key) for kind in ("bbox", "segm") for key in ("AP", "AP50")]
    lines += markdown_table(["model", "box AP", "box AP50", "mask AP", "mask AP50", "parameters"],
                            [[m["title"], *(f"{m[kind][key]:.1f}" for kind, key in aps), f"{m['parameters']:,}"]
                             for m in metrics["models"].values()])
    lines += ["", f"CARAFE learned (box and mask AP50 at least {LEARNED_MARGIN:.0f} points above the untrained "
                  f"model's): {'yes' if metrics['learned'] else 'NO'}.", "",
              "For reference, mmdetection v2's model zoo on COCO val2017 with ResNet-50 (1x schedule): Mask R-CNN "
              "38.2 box / 34.7 mask AP, with CARAFE 39.3 / 35.8. The tiny models here differ from those in size, "
              "data and schedule; one seed each, so their gap is indicative only.", "",
              "Figures: `detections.png` (baseline | CARAFE, as the paper's Figure 2), `reassembly.png` (what "
              "CARAFE reassembles into chosen P2 locations, as the paper's Figure 1), `training_curves.png`."]
    return lines


def main(argv=None) -> int:
    parser = demo_argument_parser("det", __doc__)
    parser.add_argument("--train", type=int, default=400, help="training images to generate")
    parser.add_argument("--val", type=int, default=100, help="validation images to generate")
    parser.add_argument("--size", type=int, default=128, help="image side")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                        help="overrides for both models' training, e.g. SOLVER.EPOCHS 2")
    args = parser.parse_args(argv)
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    print(f"[1/4] generating {args.train} + {args.val} shapes images in {out / 'data' / 'shapes'}", flush=True)
    data = make_shapes_dataset(out / "data" / "shapes", args.train, args.val, args.size)
    sizes = ["INPUT.MIN_SIZE_TRAIN", str(args.size), "INPUT.MAX_SIZE_TRAIN", str(args.size),
             "INPUT.MIN_SIZE_TEST", str(args.size), "INPUT.MAX_SIZE_TEST", str(args.size)]
    opts = sizes + list(args.opts)

    print("[2/4] training baseline and CARAFE side by side (carafe-det-train, one thread each)", flush=True)
    outputs = {name: out / name for name in MODELS}
    for folder in (*outputs.values(), out / "untrained"):  # the demo's numbers are those of fresh runs
        shutil.rmtree(folder, ignore_errors=True)
    train_side_by_side("carafe_det.cli.train", {name: ["--engine", "torchvision", "--config-file", MODELS[name],
                                                       *run_opts(data, outputs[name], opts)] for name in MODELS}, out)
    print("[3/4] evaluating an untrained CARAFE model for reference", flush=True)
    # the model as SEED initializes it, evaluated by the trainer as a run's evaluation is (untrained/eval.json)
    untrained = load_torchvision_config(resolve_config_path(MODELS["carafe"]), run_opts(data, out / "untrained", opts))
    DetectionTrainer(untrained).evaluate_and_write(0)

    predictors = {name: TorchvisionPredictor(outputs[name] / "model_final.pth", device="cpu") for name in MODELS}
    models = {}
    for name, title in (("untrained", "untrained (CARAFE, random weights)"), *TITLES.items()):
        evaluation = json.loads((out / name / "eval.json").read_text())
        model = predictors["carafe" if name == "untrained" else name].model  # untrained: the CARAFE architecture
        models[name] = {"title": title, "bbox": evaluation["bbox"], "segm": evaluation["segm"],
                        "parameters": sum(p.numel() for p in model.parameters())}
    learned = all(models["carafe"][kind]["AP50"] >= models["untrained"][kind]["AP50"] + LEARNED_MARGIN
                  for kind in ("bbox", "segm"))

    print("[4/4] figures", flush=True)
    val = CocoDetectionDataset(data, "val", with_masks=True)
    images = [read_image(val.image_path(index)) for index in range(4)]
    save_detections([(image, [(TITLES[n], predictors[n](image).above(0.5)) for n in MODELS]) for image in images],
                    out / "detections.png")
    reassembly, scale = model_reassembly(predictors["carafe"], images[0], level=0)
    reassembly_figure(images[0], reassembly, gt_points(val, 0), out / "reassembly.png", scale,
                      title="CARAFE in the FPN: units of P3 reassembled into P2 locations (object centres, edges)")
    plot_training_curves({TITLES[name]: folder for name, folder in outputs.items()}, out / "training_curves.png",
                         [("loss", "total loss"), ("loss_mask", "mask loss")])

    iterations = json.loads((outputs["carafe"] / "eval.json").read_text())["iteration"]
    metrics = {"models": models, "learned": learned, "iterations": iterations, "seconds": time.perf_counter() - started,
               "mmdet_v2_model_zoo_coco_val2017": MODEL_ZOO, "torch": torch.__version__, "dataset": str(data)}
    lines = summary_lines(metrics, args)
    write_summary(out, metrics, lines)
    print("\n".join(lines[4:9]))
    print(f"wrote {out}/: metrics.json, summary.md, detections.png, reassembly.png, training_curves.png "
          f"({metrics['seconds'] / 60:.1f} min)")
    return 0 if learned else 1


if __name__ == "__main__":
    raise SystemExit(main())
