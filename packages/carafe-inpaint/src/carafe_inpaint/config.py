"""The configuration: carafe-inpaint's keys on the engine's base tree (carafe_engine.get_cfg()) with their defaults
(the paper's settings where the paper gives them), and the configs shipped with the package
(``carafe_inpaint/configs``)."""

from __future__ import annotations

from pathlib import Path

import carafe_engine
from carafe_engine import POSITIVE, CfgNode, add_defaults, check_values, get_cfg, load_config, resolve_config_file, set_choices

from .modeling.models import CONVS, UPSAMPLERS

CONFIG_DIR = Path(__file__).parent / "configs"

DEFAULTS = {
    "MODEL": {
        "UPSAMPLER": "deconv",        # 'deconv' (Global&Local) or 'carafe'
        "CONV": "standard",           # 'standard' or 'partial' (official Partial Conv semantics)
        "WIDTH": 64,                  # channels of the first layer; every layer scales with it
        "SYNC_BN": True,              # BatchNorm statistics over all processes (GPUs, or CPU workers)
    },
    "DISCRIMINATOR": {"WIDTH": 64, "NUM_LAYERS": 3},
    "LOSS": {
        "L1_HOLE": 1.0,               # L1 of the prediction inside the hole
        "L1_VALID": 1.0,              # L1 of the prediction outside the hole
        "ADVERSARIAL": 0.001,         # PatchGAN loss on the inpainted region
        "ADVERSARIAL_START_ITER": 0,  # iterations of reconstruction-only training first (Global&Local's T_C)
    },
    "DATASETS": {
        "TRAIN": "embedded",          # 'embedded', a folder of images, or a Places365 file list
        "TRAIN_ROOT": "",             # root of a file list's paths (default: the list's folder)
        "VAL": "embedded",
        "VAL_ROOT": "",
        "VAL_MASKS": "",              # folder of mask PNGs (carafe-inpaint-make-data); empty: the binned set, in memory
        "VAL_MASK_SEED": 2019,
        "VAL_MASKS_PER_IMAGE": 1,
        "VAL_MAX_IMAGES": 0,          # 0: all
        "IMAGE_SIZE": 256,
        "MAX_SCALE": 1.25,            # training views: shorter side resized to IMAGE_SIZE x U(1, MAX_SCALE), cropped
    },
    "SOLVER": {
        "BASE_LR": 1e-4,
        "BETAS": [0.5, 0.9],
        "IMS_PER_BATCH": 32,          # over all processes
        "MAX_ITER": 500000,
        "CHECKPOINT_PERIOD": 10000,
    },
    "TEST": {
        "EVAL_PERIOD": 10000,
        "IMS_PER_BATCH": 32,
        # recompute the generator's BatchNorm statistics on NUM_ITER training batches before each evaluation
        "PRECISE_BN": {"ENABLED": False, "NUM_ITER": 200},
    },
    "VIS": {"PERIOD": 2000, "NUM_SAMPLES": 4},
    "OUTPUT_DIR": "output/carafe-inpaint",
}

KIND = "carafe-inpaint"
# a name for each (MODEL.UPSAMPLER, MODEL.CONV): the titles of predictions and benchmark rows
VARIANT_LABELS = {("deconv", "standard"): "baseline", ("carafe", "standard"): "CARAFE",
                  ("deconv", "partial"): "PartialConv", ("carafe", "partial"): "PartialConv+CARAFE"}

# the keys' names before the package moved onto the engine's Trainer (its names, shared by every task)
RENAMED = {"DEVICE": "MODEL.DEVICE", "LOG_PERIOD": "SOLVER.LOG_PERIOD", "DATA": "DATASETS",
           "DATA.NUM_WORKERS": "DATALOADER.NUM_WORKERS",
           **{f"DATA.{key}": f"DATASETS.{key}" for key in DEFAULTS["DATASETS"]}}


def add_inpaint_config(cfg: CfgNode) -> CfgNode:
    """carafe-inpaint's keys on the engine's base tree, its defaults for the shared ones, the keys that take one
    of a fixed set of values, and the old names of renamed keys."""
    add_defaults(cfg, DEFAULTS)
    set_choices(cfg, "MODEL.UPSAMPLER", UPSAMPLERS)
    set_choices(cfg, "MODEL.CONV", CONVS)
    for old, new in RENAMED.items():
        cfg.register_renamed_key(old, new)
    return cfg


def config_from_checkpoint(state: dict, source: str) -> CfgNode:
    """The config a checkpoint was trained with, over today's defaults."""
    return carafe_engine.config_from_checkpoint(add_inpaint_config(get_cfg()), state, source)


def get_config(config_file: str | Path | None = None, opts=()) -> CfgNode:
    """DEFAULTS <- the config file (a path or a shipped config's name) <- KEY VALUE overrides, then the value checks
    the defaults' types and choices cannot express (each error names its key)."""
    path = resolve_config_file(config_file, CONFIG_DIR) if config_file else None
    cfg = load_config(add_inpaint_config(get_cfg()), path, opts)
    positive = ("SOLVER.BASE_LR", "SOLVER.IMS_PER_BATCH", "SOLVER.MAX_ITER", "SOLVER.CHECKPOINT_PERIOD",
                "TEST.EVAL_PERIOD", "TEST.IMS_PER_BATCH", "TEST.PRECISE_BN.NUM_ITER", "VIS.PERIOD", "SOLVER.LOG_PERIOD",
                "MODEL.WIDTH", "DISCRIMINATOR.WIDTH")
    return check_values(cfg, {
        **dict.fromkeys(positive, POSITIVE),
        "DATASETS.IMAGE_SIZE": (lambda v: v > 0 and v % 4 == 0, "a positive multiple of 4 (the generator has two "
                                "stride-2 stages)"),
        "DATASETS.MAX_SCALE": (lambda v: v >= 1, ">= 1"),
        "SOLVER.BETAS": (lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    })
