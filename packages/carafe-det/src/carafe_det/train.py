"""carafe-det-train: trains or evaluates the detectors, with detectron2's command line.

    carafe-det-train --config-file torchvision/mask_rcnn_R_50_FPN_carafe_1x.yaml --num-gpus 8 \\
        DATASETS.ROOT /data/coco MODEL.BACKBONE.WEIGHTS /weights/resnet50-0676ba61.pth
    carafe-det-train --engine detectron2 --config-file detectron2/mask_rcnn_R_50_FPN_carafe_1x.yaml \\
        --num-gpus 8 DATASETS.COCO_ROOT /data/coco MODEL.WEIGHTS /weights/R-50.pkl

--engine picks the implementation. By default the config decides: a torchvision-engine config says
`ENGINE: torchvision`; any other config goes to detectron2 when it is installed, and to the torchvision engine
otherwise. A config path may also name a shipped config, e.g. `torchvision/tiny_shapes_mask_rcnn_carafe.yaml`.
Several machines: run the same command on each with --num-machines N --machine-rank i --dist-url tcp://HOST:PORT,
or start it with torchrun.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import yaml
from carafe_engine import ConfigError, default_argument_parser, launch

from .cli_errors import report_user_errors
from .configs import CONFIG_DIR

ENGINES = ("auto", "torchvision", "detectron2")


def detectron2_available() -> bool:
    return importlib.util.find_spec("detectron2") is not None


def resolve_config_path(path: str | None) -> str | None:
    """A path as given, or else the shipped config of that name (configs/<path>)."""
    if path is None or Path(path).is_file():
        return path
    shipped = CONFIG_DIR / path
    if shipped.is_file():
        return str(shipped)
    raise ConfigError(f"config file not found: {path} (nor a shipped config {shipped})")


def declared_engine(path: str | None) -> str | None:
    """The ENGINE a config file (or its _BASE_ chain) declares, if any."""
    seen = set()
    while path is not None and Path(path).resolve() not in seen:
        seen.add(Path(path).resolve())
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError):
            return None  # the engine's own loader reports the problem with the file
        if not isinstance(data, dict):
            return None
        if "ENGINE" in data:
            return data["ENGINE"]
        base = data.get("_BASE_")
        path = str(Path(path).parent / base) if isinstance(base, str) else None
    return None


def pick_engine(requested: str, config_file: str | None) -> str:
    if requested != "auto":
        if requested == "detectron2" and not detectron2_available():
            raise SystemExit("--engine detectron2: detectron2 is not installed; install it with\n"
                             "  pip install 'git+https://github.com/facebookresearch/detectron2.git'\n"
                             "or use --engine torchvision")
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
        raise SystemExit("this is a detectron2 config, and detectron2 is not installed; install it with\n"
                         "  pip install 'git+https://github.com/facebookresearch/detectron2.git'")
    if args.num_gpus > 1 and "OMP_NUM_THREADS" not in os.environ:
        # CPU workers (gloo) share the cores; torchrun makes the same choice
        os.environ["OMP_NUM_THREADS"] = "1"
    return report_user_errors("carafe-det-train", lambda: run_engine(engine, args))


def run_engine(engine: str, args) -> None:
    if engine == "detectron2":
        from .detectron2_project.train_net import run

        run(args)
    else:
        from .torchvision_engine.trainer import main as engine_main

        launch(engine_main, args.num_gpus, args.num_machines, args.machine_rank, args.dist_url, args=(args,))


if __name__ == "__main__":
    raise SystemExit(main())
