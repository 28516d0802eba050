"""carafe-det-convert: an mmdetection v2 model-zoo checkpoint (Faster / Mask R-CNN R50-FPN, with CARAFE or the
nearest-upsampling baseline) as this package's weights, for the torchvision engine or the detectron2 project.

    carafe-det-convert mask_rcnn_r50_fpn_carafe_1x_coco_bbox_mAP-0.393__segm_mAP-0.358_20200503_135957-8687f195.pth \\
        --output mask_rcnn_carafe_tv.pth
    carafe-det-train --config-file torchvision/mmdet/mask_rcnn_r50_fpn_carafe_1x_coco.yaml --eval-only \\
        MODEL.WEIGHTS mask_rcnn_carafe_tv.pth DATASETS.ROOT /data/coco OUTPUT_DIR out/mmdet_mask_carafe

The model (one of faster_rcnn_r50_fpn_1x_coco, faster_rcnn_r50_fpn_carafe_1x_coco, mask_rcnn_r50_fpn_1x_coco,
mask_rcnn_r50_fpn_carafe_1x_coco) is read from the checkpoint's tensors; the output is checked against the model
of --config-file (default: the shipped <engine>/mmdet/<model>.yaml, which has mmdetection's inference settings)
and must fill it exactly. The checkpoint is never downloaded: fetch it from download.openmmlab.com yourself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from carafe_engine import CommandLineParser, report_user_errors

from ..configs import detectron2_available
from ..convert import ENGINES, convert_checkpoint

PROG = "carafe-det-convert"


def main(argv=None) -> int:
    parser = CommandLineParser(prog=PROG, description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help="the mmdetection checkpoint (.pth; its 'state_dict', or a bare one)")
    parser.add_argument("--output", type=Path, required=True, metavar="FILE",
                        help="where to write the converted checkpoint")
    parser.add_argument("--engine", choices=ENGINES, default="torchvision",
                        help="the engine that will load it (default: torchvision)")
    parser.add_argument("--config-file", default=None, metavar="FILE",
                        help="the config whose model it must fill (default: <engine>/mmdet/<model>.yaml)")
    parser.add_argument("opts", nargs="*", default=[], metavar="KEY VALUE",
                        help="config overrides, e.g. MODEL.ROI_HEADS.NUM_CLASSES 20")
    args = parser.parse_intermixed_args(argv)  # flags before or after the KEY VALUE pairs
    if args.engine == "detectron2" and not detectron2_available():
        parser.error("--engine detectron2: detectron2 is not installed")
    if args.output.resolve() == args.input.resolve():
        parser.error(f"--output {args.output} is the input file: give another path")
    return report_user_errors(PROG, lambda: run(args))


def run(args) -> int:
    result = convert_checkpoint(args.input, args.output, args.engine, args.config_file, args.opts)
    conversion = result.conversion
    print(f"{args.input}: mmdetection {conversion.variant.name}, {conversion.num_classes} classes, "
          f"{len(conversion.state)} tensors -> {result.path} ({args.engine} engine, fits {result.config_file}; "
          f"{len(conversion.ignored)} BatchNorm counters dropped"
          + (f", zero background rows in {', '.join(conversion.zero_rows)}" if conversion.zero_rows else "") + ")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
