"""carafe-inpaint-train: trains (or, with --eval-only, evaluates) a Global&Local inpainting model.

    carafe-inpaint-train --config-file tiny_carafe.yaml OUTPUT_DIR out/tiny_carafe
    carafe-inpaint-train --config-file places_carafe.yaml --num-gpus 8 DATASETS.TRAIN /data/places365/train.txt ...
    carafe-inpaint-train --config-file tiny_carafe.yaml --resume OUTPUT_DIR out/tiny_carafe
    carafe-inpaint-train --config-file tiny_carafe.yaml --eval-only MODEL.WEIGHTS out/tiny_carafe/model_final.pth
    torchrun --nproc-per-node 8 -m carafe_inpaint.cli.train --config-file places_carafe.yaml

--config-file takes a path or the name of a shipped config (places_deconv, places_carafe, places_partialconv,
tiny_deconv, tiny_carafe, tiny_partialconv). OUTPUT_DIR receives config.yaml, log.txt, checkpoints
(model_XXXXXXX.pth, model_final.pth, last_checkpoint), metrics.jsonl, eval.json and samples/iter_XXXXXXX.png.
"""

from __future__ import annotations

from carafe_engine import train_command

from ..config import get_config
from ..engine import InpaintingTrainer


def main(argv=None) -> int:
    return train_command(InpaintingTrainer, get_config, "carafe-inpaint-train", "Train or evaluate a Global&Local "
                         "inpainting model (deconvolution, CARAFE or Partial Conv).", argv,
                         epilog=__doc__.split("\n\n", 1)[1])


if __name__ == "__main__":
    raise SystemExit(main())
