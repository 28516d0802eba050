"""add_carafe_config: the keys the CARAFE modules read, added to a detectron2 config."""

from detectron2.config import CfgNode as CN


def add_carafe_config(cfg) -> None:
    """Adds, with the paper's values as defaults:

    MODEL.FPN.UPSAMPLE            carafe | nearest: the FPN top-down pathway's x2 upsampler
    MODEL.FPN.TOP_LEVEL           conv (FPN_CARAFE's P6 in the pathway) | maxpool (the standard FPN's P6)
    MODEL.CARAFE.*                CARAFEPack settings: UP_KERNEL 5, UP_GROUP 1, ENCODER_KERNEL 3,
                                  ENCODER_DILATION 1, COMPRESSED_CHANNELS 64
    MODEL.ROI_MASK_HEAD.UPSAMPLE  carafe | deconv | nearest: the mask head's x2 upsampler (CARAFEMaskHead)
    DATASETS.COCO_ROOT            a COCO folder; dataset names carafe_coco_<split> in DATASETS.TRAIN/TEST are
                                  registered from ROOT/annotations/instances_<split>.json and ROOT/<split>/
    """
    cfg.MODEL.FPN.UPSAMPLE = "carafe"
    cfg.MODEL.FPN.TOP_LEVEL = "conv"
    cfg.MODEL.CARAFE = CN()
    cfg.MODEL.CARAFE.UP_KERNEL = 5
    cfg.MODEL.CARAFE.UP_GROUP = 1
    cfg.MODEL.CARAFE.ENCODER_KERNEL = 3
    cfg.MODEL.CARAFE.ENCODER_DILATION = 1
    cfg.MODEL.CARAFE.COMPRESSED_CHANNELS = 64
    cfg.MODEL.ROI_MASK_HEAD.UPSAMPLE = "carafe"
    cfg.DATASETS.COCO_ROOT = ""
