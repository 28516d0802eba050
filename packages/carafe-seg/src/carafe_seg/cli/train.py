"""carafe-seg-train: trains and evaluates UperNet (with or without CARAFE) on ADE20K-layout data.

    carafe-seg-train --config-file upernet_r50_ade20k_carafe.yaml --num-gpus 8 \\
        DATASETS.ROOT /data/ADEChallengeData2016 MODEL.BACKBONE.WEIGHTS /weights/resnet50-imagenet.pth \\
        OUTPUT_DIR output/upernet_r50_carafe
    carafe-seg-train --config-file ... --resume                # continue from OUTPUT_DIR's last checkpoint
    carafe-seg-train --config-file ... --eval-only MODEL.WEIGHTS output/.../model_final.pth

--config-file takes a path or the name of a config shipped in carafe_seg/configs. OUTPUT_DIR receives
config.yaml, log.txt, metrics.jsonl (training losses and evaluations), checkpoints (model_<iter>.pth,
model_final.pth, last_checkpoint) and eval.json (the latest evaluation, per class). See carafe_seg.engine for
the training recipe.
"""

from __future__ import annotations

from carafe_engine import train_command

from ..config import load_seg_config
from ..engine import SegmentationTrainer


def main(argv=None) -> int:
    return train_command(SegmentationTrainer, load_seg_config, "carafe-seg-train",
                         "Train or evaluate UperNet with CARAFE on ADE20K (carafe-seg)", argv, epilog=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
