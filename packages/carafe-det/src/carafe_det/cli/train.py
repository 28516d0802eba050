"""carafe-det-train: trains or evaluates the detectors, with detectron2's command line.

    carafe-det-train --config-file torchvision/mask_rcnn_R_50_FPN_carafe_1x.yaml --num-gpus 8 \\
        DATASETS.ROOT /data/coco MODEL.BACKBONE.WEIGHTS /weights/resnet50-0676ba61.pth
    carafe-det-train --engine detectron2 --config-file detectron2/mask_rcnn_R_50_FPN_carafe_1x.yaml \\
        --num-gpus 8 DATASETS.ROOT /data/coco MODEL.WEIGHTS /weights/R-50.pkl

--engine picks the implementation. By default the config decides: a torchvision-engine config says
`ENGINE: torchvision`; any other config goes to detectron2 when it is installed, and to the torchvision engine
otherwise. A config path may also name a shipped config, e.g. `torchvision/tiny_shapes_mask_rcnn_carafe.yaml`.
Several machines: run the same command on each with --num-machines N --machine-rank i --dist-url tcp://HOST:PORT,
or start it with torchrun.
"""

from __future__ import annotations

import os

from carafe_engine import (ConfigError, check_training_output_dir, default_argument_parser, launch,
                           report_user_errors, run_trainer)

from ..configs import declared_engine, detectron2_available, resolve_config_path
from ..torchvision_engine import DetectionTrainer, load_torchvision_config

PROG = "carafe-det-train"
INSTALL_DETECTRON2 = "pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'"
ENGINES = ("auto", "torchvision", "detectron2")


def pick_engine(requested: str, config_file: str | None) -> str:
    if requested != "auto":
        if requested == "detectron2" and not detectron2_available():
            raise ConfigError(f"--engine detectron2: detectron2 is not installed ({INSTALL_DETECTRON2}); or use "
                              "--engine torchvision")
        return requested
    declared = declared_engine(config_file)
    if declared is not None:
        return str(declared)
    return "detectron2" if detectron2_available() else "torchvision"


def main(argv=None):
    parser = default_argument_parser("Train or evaluate Faster/Mask R-CNN with CARAFE (baseline or CARAFE by config)",
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="torchvision or detectron2; auto (default): the config's ENGINE, else detectron2 if "
                             "installed, else torchvision")
    args = parser.parse_args(argv)
    try:
        args.config_file = resolve_config_path(args.config_file)
        engine = pick_engine(args.engine, args.config_file)
    except ConfigError as error:
        parser.error(str(error))
    if engine not in ("torchvision", "detectron2"):
        parser.error(f"unknown engine {engine!r} (the config's ENGINE); expected torchvision or detectron2")
    if engine == "detectron2" and not detectron2_available():
        parser.error(f"this is a detectron2 config, and detectron2 is not installed ({INSTALL_DETECTRON2})")
    if args.num_gpus > 1 and "OMP_NUM_THREADS" not in os.environ:
        # CPU workers (gloo) share the cores; torchrun makes the same choice
        os.environ["OMP_NUM_THREADS"] = "1"
    if engine == "detectron2":
        from ..detectron2_project.train_net import run

        return report_user_errors(PROG, lambda: run(args))
    return report_user_errors(PROG, lambda: run_torchvision(args))


def run_torchvision(args) -> None:
    """The config loaded and the output folder checked before any process starts, then the engine's trainer in
    each process."""
    cfg = load_torchvision_config(args.config_file, args.opts)
    if not args.eval_only:
        check_training_output_dir(cfg.OUTPUT_DIR, args.resume)
    launch(run_trainer, args.num_gpus, args.num_machines, args.machine_rank, args.dist_url,
           args=(DetectionTrainer, cfg, args.resume, args.eval_only), rendezvous_timeout=args.dist_timeout)


if __name__ == "__main__":
    raise SystemExit(main())
