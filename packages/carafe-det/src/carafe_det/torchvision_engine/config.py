"""The torchvision engine's config: its keys on the engine's base tree (carafe_engine.get_cfg(), which holds
MODEL.DEVICE, MODEL.WEIGHTS, MODEL.CARAFE, SOLVER, DATALOADER, TEST, OUTPUT_DIR and SEED), with their defaults.
Key names follow detectron2's where the two engines share a meaning."""

from __future__ import annotations

from pathlib import Path

from carafe_engine import POSITIVE, CfgNode, ConfigError, add_defaults, check_values, get_cfg, load_config, set_choices

from ..modeling import BACKBONE_NORMS, FPN_UPSAMPLERS, MASK_UPSAMPLERS, TOP_LEVELS
from .layers import ANCHOR_STYLES, MASK_PASTES, POOLER_TYPES, RESIZE_ROUNDINGS
from .model import BACKBONES, STAGES

ENGINE_NAME = "torchvision"

DEFAULTS: dict = {
    "ENGINE": ENGINE_NAME,  # marks the file as a torchvision-engine config (carafe-det-train picks the engine by it)
    "MODEL": {
        "MASK_ON": False,  # False: Faster R-CNN; True: Mask R-CNN
        "BACKBONE": {
            "NAME": "resnet50",  # a torchvision ResNet: resnet18, resnet34, resnet50, resnet101
            "WEIGHTS": "",  # ImageNet weights for it: a torchvision state-dict file (e.g. resnet50-0676ba61.pth)
            # FrozenBN: statistics and affine frozen (detectron2's default); FrozenStatsBN: statistics frozen, affine
            # trained (the authors' release, mmdetection's norm_eval); BN: both trained (training from scratch)
            "NORM": "FrozenBN",
            "FREEZE_AT": 2,  # 0: train all; 1: freeze the stem; 2: stem and res2 (the paper's setting) ...
        },
        "FPN": {
            "OUT_CHANNELS": 256,
            "UPSAMPLE": "carafe",  # carafe | nearest: the top-down pathway's x2 upsampler
            # conv: FPN_CARAFE's P6 (a stride-2 conv in the top-down pathway); maxpool: the standard FPN's
            "TOP_LEVEL": "conv",
        },
        "ANCHOR_GENERATOR": {
            "SIZES": [[32], [64], [128], [256], [512]], "ASPECT_RATIOS": [0.5, 1.0, 2.0],
            # torchvision: its AnchorGenerator (cell anchors rounded to whole pixels, strides from the padded
            # size); exact: mmdetection's and detectron2's (unrounded, strides 4..64)
            "STYLE": "torchvision",
        },
        "RPN": {
            "PRE_NMS_TOPK_TRAIN": 2000, "PRE_NMS_TOPK_TEST": 1000,
            "POST_NMS_TOPK_TRAIN": 1000, "POST_NMS_TOPK_TEST": 1000,
            "NMS_THRESH": 0.7, "BATCH_SIZE_PER_IMAGE": 256,
        },
        "ROI_HEADS": {
            "NUM_CLASSES": 80,  # foreground classes; must match the dataset's categories
            "BATCH_SIZE_PER_IMAGE": 512, "POSITIVE_FRACTION": 0.25,
            "SCORE_THRESH_TEST": 0.05, "NMS_THRESH_TEST": 0.5, "DETECTIONS_PER_IMAGE": 100,
        },
        # POOLER_TYPE ROIAlign: torchvision's RoIAlign (aligned=False); ROIAlignV2: aligned=True (detectron2's
        # ROIAlignV2, mmcv's RoIAlign). POOLER_SAMPLING_RATIO: samples per bin side, 0 = adaptive
        "ROI_BOX_HEAD": {"FC_DIM": 1024, "POOLER_TYPE": "ROIAlign", "POOLER_SAMPLING_RATIO": 2},
        "ROI_MASK_HEAD": {
            "UPSAMPLE": "carafe",  # carafe | deconv | nearest: the x2 upsampler before the mask logits
            "NUM_CONV": 4, "CONV_DIM": 256,
            "POOLER_TYPE": "ROIAlign", "POOLER_SAMPLING_RATIO": 2,  # as ROI_BOX_HEAD's
            # torchvision: its paste_masks_in_image; exact: bilinear sampling at the box's float coordinates
            # (mmdetection's and detectron2's pasting)
            "PASTE": "torchvision",
        },
    },
    "INPUT": {
        "MIN_SIZE_TRAIN": 800, "MAX_SIZE_TRAIN": 1333,  # shorter edge 800, longer at most 1333 (the paper)
        "MIN_SIZE_TEST": 800, "MAX_SIZE_TEST": 1333,
        "SIZE_DIVISIBILITY": 32,
        # the resized size: floor (torchvision's interpolate) or nearest (round(side * scale): mmdetection,
        # detectron2)
        "RESIZE_ROUNDING": "floor",
        "HFLIP_PROB": 0.5,
    },
    "DATASETS": {
        "ROOT": "",  # a COCO folder: ROOT/annotations/instances_<split>.json and ROOT/<split>/
        "TRAIN": "train2017",
        "TEST": "val2017",
    },
    "DATALOADER": {"FILTER_EMPTY_ANNOTATIONS": True},
    # images per forward pass in evaluation, per process; each batch is padded to its largest image, so 1 pads
    # every image only to SIZE_DIVISIBILITY (as mmdetection's and detectron2's tests do)
    "TEST": {"IMS_PER_BATCH": 2},
    # the engine's SOLVER defaults (16 images per batch over all processes, lr 0.02, momentum 0.9, weight decay
    # 1e-4; MAX_ITER > 0 overrides the epochs) and these
    "SOLVER": {
        "EPOCHS": 12.0,  # schedule length
        "STEPS": [8.0, 11.0],  # epochs at which the learning rate is multiplied by GAMMA
        "GAMMA": 0.1,
        "WARMUP_ITERS": 500, "WARMUP_FACTOR": 0.001,
        # gradients rescaled to an L2 norm of at most CLIP_VALUE before each step (mmdetection v1's grad_clip)
        "CLIP_GRADIENTS": {"ENABLED": False, "CLIP_VALUE": 35.0, "NORM_TYPE": 2.0},
    },
}

NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
DETECTRON2_ONLY_KEYS = ("'MODEL.META_ARCHITECTURE'", "'VERSION'", "'MODEL.RESNETS'", "'MODEL.PROPOSAL_GENERATOR'")


# the keys that take one of a fixed set of values
CHOICES = {"MODEL.BACKBONE.NAME": BACKBONES, "MODEL.BACKBONE.NORM": BACKBONE_NORMS,
           "MODEL.FPN.UPSAMPLE": FPN_UPSAMPLERS, "MODEL.FPN.TOP_LEVEL": TOP_LEVELS,
           "MODEL.ROI_MASK_HEAD.UPSAMPLE": MASK_UPSAMPLERS, "MODEL.ANCHOR_GENERATOR.STYLE": ANCHOR_STYLES,
           "MODEL.ROI_BOX_HEAD.POOLER_TYPE": POOLER_TYPES, "MODEL.ROI_MASK_HEAD.POOLER_TYPE": POOLER_TYPES,
           "MODEL.ROI_MASK_HEAD.PASTE": MASK_PASTES, "INPUT.RESIZE_ROUNDING": RESIZE_ROUNDINGS}


def add_det_config(cfg: CfgNode) -> CfgNode:
    """carafe-det's keys (torchvision engine) on the engine's base tree (carafe_engine.get_cfg()), its defaults for
    the shared ones, and their CHOICES."""
    add_defaults(cfg, DEFAULTS)
    for key, choices in CHOICES.items():
        set_choices(cfg, key, choices)
    return cfg


def load_torchvision_config(path: str | Path | None = None, opts=()) -> CfgNode:
    """DEFAULTS <- the YAML file (and its _BASE_ chain) <- overrides; checks the values' ranges."""
    try:
        cfg = load_config(add_det_config(get_cfg()), path, opts)
    except ConfigError as error:
        # keys only detectron2's config has: point to the engine that reads this file
        if any(key in str(error) for key in DETECTRON2_ONLY_KEYS):
            raise ConfigError(f"{error}; {path} looks like a detectron2 config: run carafe-det-train with "
                              f"--engine detectron2 (detectron2 must be installed)") from None
        raise
    if cfg.ENGINE != ENGINE_NAME:
        raise ConfigError(f"{path}: ENGINE is {cfg.ENGINE!r}; the torchvision engine reads configs with "
                          f"ENGINE: {ENGINE_NAME}")
    if cfg.SOLVER.MAX_ITER <= 0 and cfg.SOLVER.EPOCHS <= 0:
        raise ConfigError("the schedule is empty: set SOLVER.EPOCHS > 0 or SOLVER.MAX_ITER > 0")
    return check_values(cfg, {"SOLVER.IMS_PER_BATCH": POSITIVE, "TEST.IMS_PER_BATCH": POSITIVE,
                              "MODEL.ROI_HEADS.NUM_CLASSES": POSITIVE,
                              "MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO": NON_NEGATIVE,
                              "MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO": NON_NEGATIVE,
                              "MODEL.BACKBONE.FREEZE_AT": (lambda v: 0 <= v <= len(STAGES),
                                                            f"in 0..{len(STAGES)} (stem, res2..res5)")})


def checkpoint_kind(cfg: CfgNode) -> str:
    """The 'kind' every checkpoint of this model carries: another architecture's checkpoint is refused."""
    return "carafe-det/mask_rcnn" if cfg.MODEL.MASK_ON else "carafe-det/faster_rcnn"
