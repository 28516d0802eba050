"""CSAIL's published UperNet-50 (the paper's baseline) as a carafe-seg checkpoint.

CSAILVision/semantic-segmentation-pytorch publishes its trained ADE20K models as two state dicts, saved by its
train.py `checkpoint()`: `encoder_epoch_30.pth` (models.py `Resnet`: the deep-stem ResNet-50 without fc) and
`decoder_epoch_30.pth` (models.py `UPerNet`, fpn_dim 512, 150 classes). carafe-seg's csail_resnet50 backbone and
its UperNet decoder keep the official module names, so the conversion puts the encoder under `backbone.` and the
decoder under `decoder.` of the bilinear paper config (upernet_r50_ade20k.yaml), checking that every tensor of the
model comes from the files with its shape and that every tensor of the files is used. Class channel i is label
i + 1 in both (label 0, "other", is ignored), so no reordering is needed.
"""

from __future__ import annotations

from pathlib import Path

from carafe_engine import ConfigError, load_pretrained, save_checkpoint

from .config import load_seg_config
from .engine import CHECKPOINT_KIND
from .modeling import build_model

PAPER_BASELINE_CONFIG = "upernet_r50_ade20k.yaml"


def convert_csail_upernet(encoder: str | Path, decoder: str | Path, output: str | Path,
                          config: str | Path = PAPER_BASELINE_CONFIG, opts=()) -> Path:
    """Writes output, a carafe-seg checkpoint (the model's weights and the config) that `--eval-only` and
    carafe-seg-predict load. Errors (carafe_engine.CheckpointError) name the flag, the file and the tensors."""
    cfg = load_seg_config(config, ["MODEL.BACKBONE.WEIGHTS", "", *opts])
    if cfg.MODEL.BACKBONE.NAME != "csail_resnet50" or any(kind != "bilinear" for kind in cfg.MODEL.UPSAMPLER.values()):
        raise ConfigError(f"--config-file {config}: CSAIL's UperNet needs MODEL.BACKBONE.NAME csail_resnet50 and bilinear "
                         f"upsampling in every place (the config has {cfg.MODEL.BACKBONE.NAME}, "
                         f"{dict(cfg.MODEL.UPSAMPLER)})")
    model = build_model(cfg)
    load_pretrained(model.backbone, encoder, what="--encoder", ignore=())
    load_pretrained(model.decoder, decoder, what="--decoder", ignore=())
    state = {"kind": CHECKPOINT_KIND, "iteration": 0, "config": cfg.to_dict(), "model": model.state_dict(),
             "converted_from": [str(encoder), str(decoder)]}
    return save_checkpoint(output, state)


__all__ = ["PAPER_BASELINE_CONFIG", "convert_csail_upernet"]
