"""add_carafe_config: the keys the CARAFE modules read, added to a detectron2 config."""

from detectron2.config import CfgNode as CN


def add_carafe_config(cfg) -> None:
    """Adds, with the paper's values as defaults:

    MODEL.FPN.UPSAMPLE            carafe | nearest: the FPN top-down pathway's x2 upsampler
    MODEL.FPN.TOP_LEVEL           conv (FPN_CARAFE's P6 in the pathway) | maxpool (the standard FPN's P6)
    MODEL.CARAFE.*                CARAFEPack settings: UP_KERNEL 5, UP_GROUP 1, ENCODER_KERNEL 3,
                                  ENCODER_DILATION 1, COMPRESSED_CHANNELS 64
    MODEL.ROI_MASK_HEAD.UPSAMPLE  carafe | deconv | nearest: the mask head's x2 upsampler (CARAFEMaskHead)
    DATASETS.ROOT                 a COCO folder, as in the torchvision engine: dataset names carafe_coco_<split> in
                                  DATASETS.TRAIN/TEST are registered from ROOT/annotations/instances_<split>.json
                                  and ROOT/<split>/
The key names are the torchvision engine's (carafe_det.torchvision_engine.config), so a setting reads the same in
both engines.
    """
    cfg.MODEL.FPN.UPSAMPLE = "carafe"
    cfg.MODEL.FPN.TOP_LEVEL = "conv"
    cfg.MODEL.CARAFE = CN({"UP_KERNEL": 5, "UP_GROUP": 1, "ENCODER_KERNEL": 3, "ENCODER_DILATION": 1,
                           "COMPRESSED_CHANNELS": 64})
    cfg.MODEL.ROI_MASK_HEAD.UPSAMPLE = "carafe"
    cfg.DATASETS.ROOT = ""


def load_detectron2_config(config_file, opts=()):
    """detectron2's defaults + add_carafe_config <- the YAML file <- KEY VALUE overrides (not frozen). A key the
    config does not have is a ConfigError naming it and where it came from."""
    from carafe_engine import ConfigError
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_carafe_config(cfg)
    try:
        cfg.merge_from_file(str(config_file))
    except (KeyError, AssertionError) as error:  # yacs reports unknown keys as these
        raise ConfigError(f"{config_file}: {error.args[0] if error.args else error}") from None
    try:
        cfg.merge_from_list([str(v) for v in opts])
    except (KeyError, AssertionError, ValueError) as error:
        raise ConfigError(f"command-line override: {error.args[0] if error.args else error}") from None
    return cfg
