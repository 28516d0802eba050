"""The configuration of carafe-seg: defaults (the paper's settings), shipped YAML files, loading with overrides.

Defaults follow the paper's supplementary material and the official UperNet implementation
(CSAILVision/semantic-segmentation-pytorch, which the paper used): its deep-stem ResNet-50, PPM scales 1-2-3-6, FPN width 512,
SGD lr 0.02 / momentum 0.9 / weight decay 1e-4, 16 images per batch, poly power 0.9, 20 epochs of 5000
iterations (the official code's `epoch_iters`), training shorter edges {300, ..., 600}, longer edge <= 1200,
single-scale testing at 450.
"""

from __future__ import annotations

from pathlib import Path

import carafe_engine
from carafe_engine import (POSITIVE, CfgNode, add_defaults, check_values, get_cfg, load_config, resolve_config_file,
                           set_choices)

CONFIG_DIR = Path(__file__).parent / "configs"

UPSAMPLER_PLACES = ("PPM", "FPN", "FUSION")
UPSAMPLER_KINDS = ("bilinear", "carafe")
BACKBONES = ("csail_resnet50", "torchvision_resnet50", "tiny")

DEFAULTS = {
    "MODEL": {
        "BACKBONE": {
            # the official implementation's deep-stem ResNet-50; torchvision_resnet50: torchvision's
            "NAME": "csail_resnet50",
            # the ImageNet state dict of that backbone: CSAIL's resnet50-imagenet.pth for csail_resnet50,
            # torchvision's (e.g. resnet50-0676ba61.pth) for torchvision_resnet50; "" = random init
            "WEIGHTS": "",
            # channels of the four stages of the 'tiny' backbone (strides 4, 8, 16, 32)
            "TINY_WIDTHS": [16, 32, 64, 128],
        },
        "DECODER": {
            "PPM_SCALES": [1, 2, 3, 6],
            "PPM_DIM": 512,
            "FPN_DIM": 512,
        },
        # the upsampler of each of the three places: "bilinear" (the baseline) or "carafe"; CARAFEPack's
        # hyperparameters are the engine's MODEL.CARAFE (the paper's: k_up 5, G 1, k_enc 3, C_m 64)
        "UPSAMPLER": {"PPM": "bilinear", "FPN": "bilinear", "FUSION": "bilinear"},
        # synchronized BatchNorm across processes (the paper's setting) when training on more than one
        "SYNC_BN": True,
    },
    "DATASETS": {
        # the ADEChallengeData2016 folder (images/{training,validation}, annotations/{training,validation})
        "ROOT": "",
        "TRAIN_SPLIT": "training",
        "TEST_SPLIT": "validation",
        # labels 1..NUM_CLASSES are classes; 0 ('other') is ignored
        "NUM_CLASSES": 150,
    },
    "INPUT": {
        "TRAIN_SHORT_SIZES": [300, 375, 450, 525, 600],
        "TRAIN_MAX_SIZE": 1200,
        "TEST_SHORT_SIZE": 450,
        "TEST_MAX_SIZE": 1200,
        "RANDOM_FLIP": True,
        # images (and labels) are padded to a multiple of this, as in the official implementation
        "SIZE_DIVISIBILITY": 32,
        # the training loss is computed at 1/4 resolution against labels subsampled by nearest neighbour (the
        # official `segm_downsampling_rate`); 1 or 2: the logits are upsampled bilinearly to that resolution
        "LABEL_DOWNSAMPLE": 4,
        # RGB, 0..255: the ImageNet statistics, the normalization of both ResNet-50s' weights (torchvision's, and
        # CSAIL's since its code went to RGB [0, 1] with mean 0.485/0.456/0.406 and std 0.229/0.224/0.225: its
        # commits 5a22d74 / ac0019c, August 2019; before that it took BGR 0..255 minus 102.98/115.95/122.77)
        "PIXEL_MEAN": [123.675, 116.28, 103.53],
        "PIXEL_STD": [58.395, 57.12, 57.375],
    },
    # the engine's SOLVER defaults are the paper's: 16 images per batch over all processes (8 GPUs x 2), lr 0.02,
    # momentum 0.9, weight decay 1e-4
    "SOLVER": {
        "POLY_POWER": 0.9,
        "EPOCHS": 20,  # the length of the run (unless SOLVER.MAX_ITER > 0)
        # iterations per epoch; the official code's epoch is 5000 iterations; 0 = one pass over the training set
        "ITERS_PER_EPOCH": 5000,
    },
    # batches of images of one orientation (portrait or landscape), as the official trainer
    "DATALOADER": {"ASPECT_RATIO_GROUPING": True},
    "SEED": 304,
    "OUTPUT_DIR": "output/carafe-seg",
}


def add_seg_config(cfg: CfgNode) -> CfgNode:
    """carafe-seg's keys on the engine's base tree (carafe_engine.get_cfg()), its defaults for the shared ones,
    and the keys that take one of a fixed set of values."""
    add_defaults(cfg, DEFAULTS)
    set_choices(cfg, "MODEL.BACKBONE.NAME", BACKBONES)
    for place in UPSAMPLER_PLACES:
        set_choices(cfg, f"MODEL.UPSAMPLER.{place}", UPSAMPLER_KINDS)
    return cfg


def default_config() -> CfgNode:
    return add_seg_config(get_cfg())


def check_config(cfg: CfgNode) -> CfgNode:
    """Value checks the defaults' types and choices cannot express; each error names the key."""
    three = (lambda v: len(v) == 3, "3 values (R, G, B)")
    return check_values(cfg, {
        "MODEL.BACKBONE.TINY_WIDTHS": (lambda v: len(v) == 4, "4 stage widths"),
        "INPUT.TRAIN_SHORT_SIZES": (len, "a list of at least one size"),
        "INPUT.SIZE_DIVISIBILITY": (lambda v: v >= 32 and v % 32 == 0, "a positive multiple of 32 (the backbone's "
                                    "stride)"),
        "INPUT.LABEL_DOWNSAMPLE": (lambda v: v in (1, 2, 4), "1, 2 or 4 (the logits are at 1/4 resolution)"),
        "INPUT.PIXEL_MEAN": three, "INPUT.PIXEL_STD": three,
        "DATASETS.NUM_CLASSES": (lambda v: 1 <= v <= 255, "1..255 (labels are uint8 PNGs)"),
        "SOLVER.IMS_PER_BATCH": POSITIVE, "SOLVER.EPOCHS": POSITIVE, "SOLVER.CHECKPOINT_PERIOD": POSITIVE,
        "SOLVER.ITERS_PER_EPOCH": (lambda v: v >= 0, ">= 0 (0 = one pass over the data)"),
    })


def describe_upsamplers(cfg) -> str:
    """'bilinear', 'CARAFE', or e.g. 'CARAFE (PPM, FUSION)'."""
    places = [p for p in UPSAMPLER_PLACES if cfg.MODEL.UPSAMPLER[p] == "carafe"]
    if not places:
        return "bilinear"
    return "CARAFE" if len(places) == len(UPSAMPLER_PLACES) else f"CARAFE ({', '.join(places)})"


def load_seg_config(path: str | Path | None = None, opts=()) -> CfgNode:
    """DEFAULTS <- the YAML file (a path or a shipped config's name) <- KEY VALUE overrides, then checked."""
    resolved = resolve_config_file(path, CONFIG_DIR) if path is not None else None
    return check_config(load_config(default_config(), resolved, opts))


def config_from_checkpoint(state: dict, source: str) -> CfgNode:
    """The config a checkpoint was trained with (checkpoints store it), applied over today's defaults."""
    return check_config(carafe_engine.config_from_checkpoint(default_config(), state, source))
