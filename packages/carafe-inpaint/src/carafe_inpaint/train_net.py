"""carafe-inpaint-train: trains (or, with --eval-only, evaluates) a Global&Local inpainting model.

    carafe-inpaint-train --config-file tiny_carafe.yaml OUTPUT_DIR out/tiny_carafe
    carafe-inpaint-train --config-file places_carafe.yaml --num-gpus 8 DATA.TRAIN /data/places365/train.txt ...
    carafe-inpaint-train --config-file tiny_carafe.yaml --resume OUTPUT_DIR out/tiny_carafe
    carafe-inpaint-train --config-file tiny_carafe.yaml --eval-only MODEL.WEIGHTS out/tiny_carafe/model_final.pth
    torchrun --nproc-per-node 8 -m carafe_inpaint.train_net --config-file places_carafe.yaml

--config-file takes a path or the name of a shipped config (places_deconv, places_carafe, places_partialconv,
tiny_deconv, tiny_carafe, tiny_partialconv). OUTPUT_DIR receives config.yaml, checkpoints (model_XXXXXXX.pth,
model_final.pth, last_checkpoint), metrics.jsonl, eval_results.json and samples/iter_XXXXXXX.png.
"""

from __future__ import annotations

import os
import sys

from carafe_engine import CheckpointError, default_argument_parser, launch, load_run_config

from .config import get_config
from .data import DataError
from .images import ImageReadError
from .trainer import Trainer, default_threads


def run(args) -> dict | None:
    """One process's work (called by launch in each process)."""
    cfg = get_config(args.config_file, args.opts)
    default_threads(int(os.environ.get("LOCAL_WORLD_SIZE", args.num_gpus)))
    trainer = Trainer(cfg)
    if args.eval_only:
        trainer.load(resume=args.resume)
        if not cfg.MODEL.WEIGHTS and trainer.start_iter == 0:
            trainer.log("no weights given (MODEL.WEIGHTS or --resume): evaluating the untrained generator")
        trainer.output_dir.mkdir(parents=True, exist_ok=True)
        return trainer.evaluate(trainer.start_iter)
    trainer.load(resume=args.resume)
    return trainer.train()


def main(argv=None) -> int:
    parser = default_argument_parser("Train or evaluate a Global&Local inpainting model (deconvolution, CARAFE or "
                                     "Partial Conv).", epilog=__doc__.split("\n\n", 1)[1])
    args = parser.parse_args(argv)
    # fail on a bad config, or on a folder holding another run, before any worker process starts
    load_run_config(parser, "carafe-inpaint-train", get_config, args)
    try:
        launch(run, args.num_gpus, args.num_machines, args.machine_rank, args.dist_url, args=(args,))
    except (DataError, ImageReadError, CheckpointError) as error:
        parser.exit(2, f"carafe-inpaint-train: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
