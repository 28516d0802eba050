"""mmdetection v2's published Faster / Mask R-CNN R50-FPN checkpoints (with CARAFE, and their nearest-upsampling
baselines) as this package's weights, for the torchvision engine or the detectron2 project.

The source layout is mmdetection 2.x's (read from its code: mmdet/models/backbones/resnet.py ResNet,
necks/fpn.py FPN, necks/fpn_carafe.py FPN_CARAFE, dense_heads/rpn_head.py RPNHead,
roi_heads/bbox_heads/convfc_bbox_head.py Shared2FCBBoxHead, roi_heads/mask_heads/fcn_mask_head.py FCNMaskHead,
mmcv/ops/carafe.py CARAFEPack):

    backbone.{conv1,bn1}, backbone.layer<1-4>.<i>.{conv1-3,bn1-3,downsample.0,downsample.1}   pytorch-style ResNet
    neck.lateral_convs.<i>.conv, neck.fpn_convs.<i>.conv                            ConvModules (no norm, no act)
    neck.upsample_modules.<i>.{channel_compressor,content_encoder}                  FPN_CARAFE's CARAFEPacks
    rpn_head.{rpn_conv,rpn_cls,rpn_reg}                                             3 anchors per position
    roi_head.bbox_head.{shared_fcs.0,shared_fcs.1,fc_cls,fc_reg}    fc_cls: K + 1 rows, background LAST (index K);
                                                                    fc_reg: 4 K rows (class-specific, no bg)
    roi_head.mask_head.{convs.<i>.conv, upsample, conv_logits}      upsample: ConvTranspose2d (baseline) or a
                                                                    CARAFEPack; conv_logits: K rows

The classes are the dataset's categories in the order of their ids (mmdetection's CocoDataset: label i is the
i-th category id), the order both engines' COCO readers use too; only the background row moves: torchvision's
heads put it first (labels 1..K), detectron2's last, as mmdetection. The package's modules are laid out as
FPN_CARAFE (lateral_convs, upsample_modules, fpn_convs; the stride-2 P6 conv is lateral_convs.4 and its
CARAFEPack upsample_modules.3, as there) and CARAFEPack (channel_compressor, content_encoder), so every neck and
upsampler tensor keeps its shape and index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
from carafe_engine import CheckpointError, save_checkpoint
from carafe_engine.checkpoint import load_problem
from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

try:  # numpy 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy 1
    from numpy.core import multiarray as _multiarray

ENGINES = ("torchvision", "detectron2")

# COCO 2017's 80 categories in the order of their ids (what every engine's COCO reader and mmdetection use), and
# their names (mmdetection's CLASSES): torchvision's COCO list is indexed by category id, "N/A" at the unused ones
_COCO_BY_ID = FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
COCO_CATEGORY_IDS = [i for i, name in enumerate(_COCO_BY_ID) if name not in ("__background__", "N/A")]
COCO_CLASS_NAMES = [_COCO_BY_ID[i] for i in COCO_CATEGORY_IDS]


class ConversionError(CheckpointError):
    """A file that is not one of the supported mmdetection checkpoints, or that does not fit the target model."""


@dataclass(frozen=True)
class Variant:
    """One of the four mmdetection models, and the matching shipped configs of this package."""

    name: str  # mmdetection's config name
    mask_on: bool
    fpn_upsample: str  # carafe (FPN_CARAFE) | nearest (FPN)
    mask_upsample: str | None  # carafe | deconv | None (Faster R-CNN)


VARIANTS = (
    Variant("faster_rcnn_r50_fpn_1x_coco", False, "nearest", None),
    Variant("faster_rcnn_r50_fpn_carafe_1x_coco", False, "carafe", None),
    Variant("mask_rcnn_r50_fpn_1x_coco", True, "nearest", "deconv"),
    Variant("mask_rcnn_r50_fpn_carafe_1x_coco", True, "carafe", "carafe"),
)

# keys every mmdetection two-stage FPN detector has
REQUIRED_KEYS = ("backbone.conv1.weight", "neck.lateral_convs.0.conv.weight", "rpn_head.rpn_conv.weight",
                 "roi_head.bbox_head.fc_cls.weight")


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    return engine


# -- reading ----------------------------------------------------------------------------------------------------

# numpy scalars and arrays that training hooks may leave in a checkpoint's meta, allowed for weights_only
# loading (also under numpy 1's module name, which files pickled with it use)
_NUMPY_GLOBALS = [np.dtype, np.ndarray, _multiarray._reconstruct, _multiarray.scalar,
                  (_multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
                  (_multiarray.scalar, "numpy.core.multiarray.scalar"),
                  *(type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool"))]


def read_mmdet_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, meta) of an mmdetection checkpoint file: its 'state_dict' (and 'meta') entries, or a bare state
    dict. Read with weights_only=True."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConversionError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means it is not a checkpoint
        raise ConversionError(f"{path} is not a readable checkpoint: {load_problem(error)}") from None
    return split_checkpoint(loaded, str(path))


def split_checkpoint(loaded, source: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, meta) of a loaded mmdetection checkpoint ({'state_dict', 'meta'} or a bare state dict)."""
    if not isinstance(loaded, Mapping):
        raise ConversionError(f"{source} holds a {type(loaded).__name__}, not an mmdetection checkpoint")
    if str(loaded.get("kind", "")).startswith("carafe-det/"):
        raise ConversionError(f"{source} is already a carafe-det checkpoint ({loaded['kind']}), not an mmdetection "
                              "one")
    meta = loaded.get("meta") if isinstance(loaded.get("meta"), Mapping) else {}
    state = loaded.get("state_dict", loaded)
    if not isinstance(state, Mapping):
        raise ConversionError(f"{source}: 'state_dict' is a {type(state).__name__}, not a state dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing = [k for k in REQUIRED_KEYS if not isinstance(state.get(k), torch.Tensor)]
    if missing:
        raise ConversionError(f"{source} is not an mmdetection Faster/Mask R-CNN FPN checkpoint: it lacks "
                              f"{', '.join(missing)} (its first keys: {', '.join(list(state)[:4]) or 'none'})")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ConversionError(f"{source}: state dict entries that are not tensors: {', '.join(not_tensors[:5])}")
    return state, dict(meta)


def detect_variant(state: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> Variant:
    """Which of the four models the keys describe: a mask head or not, FPN_CARAFE's CARAFEPacks or the plain FPN,
    the mask head's CARAFEPack or deconvolution."""
    mask_on = any(k.startswith("roi_head.mask_head.") for k in state)
    carafe_fpn = "neck.upsample_modules.0.content_encoder.weight" in state
    fpn_carafe_layout = "neck.lateral_convs.4.conv.weight" in state or carafe_fpn
    upsample = "roi_head.mask_head.upsample."
    mask_upsample = ("carafe" if upsample + "content_encoder.weight" in state
                     else "deconv" if upsample + "weight" in state else None)
    found = (mask_on, "carafe" if carafe_fpn else "nearest", mask_upsample)
    for variant in VARIANTS:
        if (variant.mask_on, variant.fpn_upsample, variant.mask_upsample) == found and fpn_carafe_layout == carafe_fpn:
            return variant
    neck = "FPN_CARAFE with CARAFE" if carafe_fpn else "FPN_CARAFE without CARAFE" if fpn_carafe_layout else "FPN"
    raise ConversionError(f"{source} is none of the supported mmdetection models ({'Mask' if mask_on else 'Faster'} "
                          f"R-CNN, neck {neck}" + (f", mask head upsample {mask_upsample or 'none'}" if mask_on else "")
                          + f"); supported: {', '.join(v.name for v in VARIANTS)}")


# -- renaming -----------------------------------------------------------------------------------------------------

def _d2_resnet(match: re.Match) -> str:
    """mmdetection's (= torchvision's) ResNet names as detectron2's: layerN -> res(N+1), bnK -> convK.norm,
    downsample.0/.1 -> shortcut / shortcut.norm, conv1/bn1 of the stem -> stem.conv1(.norm)."""
    rest = match.group(1)
    rest = re.sub(r"^conv1\.", "stem.conv1.", rest)
    rest = re.sub(r"^bn1\.", "stem.conv1.norm.", rest)
    rest = re.sub(r"^layer(\d)\.", lambda m: f"res{int(m.group(1)) + 1}.", rest)
    rest = re.sub(r"\.bn(\d)\.", r".conv\1.norm.", rest)
    rest = rest.replace(".downsample.0.", ".shortcut.").replace(".downsample.1.", ".shortcut.norm.")
    return "backbone.bottom_up." + rest


def _d2_mask_conv(match: re.Match) -> str:
    return f"roi_heads.mask_head.mask_fcn{int(match.group(1)) + 1}.{match.group(2)}"


Rename = Callable[[re.Match], str] | str
# (pattern on the mmdetection key, torchvision engine name, detectron2 name): re.sub replacements
RULES: tuple[tuple[str, Rename, Rename], ...] = (
    (r"^backbone\.(.+)$", r"backbone.body.\1", _d2_resnet),
    (r"^neck\.(lateral_convs|fpn_convs)\.(\d+)\.conv\.(weight|bias)$", r"backbone.fpn.\1.\2.\3",
     r"backbone.fpn.\1.\2.\3"),
    (r"^neck\.upsample_modules\.(\d+)\.(channel_compressor|content_encoder)\.(weight|bias)$",
     r"backbone.fpn.upsample_modules.\1.\2.\3", r"backbone.fpn.upsample_modules.\1.\2.\3"),
    (r"^rpn_head\.rpn_conv\.(weight|bias)$", r"rpn.head.conv.0.0.\1", r"proposal_generator.rpn_head.conv.\1"),
    (r"^rpn_head\.rpn_cls\.(weight|bias)$", r"rpn.head.cls_logits.\1",
     r"proposal_generator.rpn_head.objectness_logits.\1"),
    (r"^rpn_head\.rpn_reg\.(weight|bias)$", r"rpn.head.bbox_pred.\1", r"proposal_generator.rpn_head.anchor_deltas.\1"),
    (r"^roi_head\.bbox_head\.shared_fcs\.0\.(weight|bias)$", r"roi_heads.box_head.fc6.\1", r"roi_heads.box_head.fc1.\1"),
    (r"^roi_head\.bbox_head\.shared_fcs\.1\.(weight|bias)$", r"roi_heads.box_head.fc7.\1", r"roi_heads.box_head.fc2.\1"),
    (r"^roi_head\.bbox_head\.fc_cls\.(weight|bias)$", r"roi_heads.box_predictor.cls_score.\1",
     r"roi_heads.box_predictor.cls_score.\1"),
    (r"^roi_head\.bbox_head\.fc_reg\.(weight|bias)$", r"roi_heads.box_predictor.bbox_pred.\1",
     r"roi_heads.box_predictor.bbox_pred.\1"),
    (r"^roi_head\.mask_head\.convs\.(\d+)\.conv\.(weight|bias)$", r"roi_heads.mask_head.\1.0.\2", _d2_mask_conv),
    (r"^roi_head\.mask_head\.upsample\.(weight|bias)$", r"roi_heads.mask_predictor.upsample.deconv.\1",
     r"roi_heads.mask_head.upsample_predictor.upsample.deconv.\1"),
    (r"^roi_head\.mask_head\.upsample\.(channel_compressor|content_encoder)\.(weight|bias)$",
     r"roi_heads.mask_predictor.upsample.\1.\2", r"roi_heads.mask_head.upsample_predictor.upsample.\1.\2"),
    (r"^roi_head\.mask_head\.conv_logits\.(weight|bias)$", r"roi_heads.mask_predictor.mask_fcn_logits.\1",
     r"roi_heads.mask_head.upsample_predictor.mask_fcn_logits.\1"),
)

# the tensors whose rows are classes: (mmdetection key prefix, rows per class, with a background row)
CLASS_TENSORS = (("roi_head.bbox_head.fc_cls.", 1, True), ("roi_head.bbox_head.fc_reg.", 4, False),
                 ("roi_head.mask_head.conv_logits.", 1, False))


def target_name(key: str, engine: str) -> str | None:
    """The name of an mmdetection tensor in the engine's model; None for a tensor no rule knows."""
    column = ENGINES.index(check_engine(engine)) + 1
    for rule in RULES:
        if re.match(rule[0], key):
            return re.sub(rule[0], rule[column], key)
    return None


def num_classes_of(state: Mapping[str, torch.Tensor]) -> int:
    """K, the foreground classes: fc_cls has K + 1 rows (background last), fc_reg 4 K, conv_logits K."""
    k = state["roi_head.bbox_head.fc_cls.weight"].shape[0] - 1
    for prefix, rows, background in CLASS_TENSORS:
        tensor = state.get(prefix + "weight")
        if tensor is not None and tensor.shape[0] != rows * (k + background):
            raise ConversionError(f"{prefix}weight has {tensor.shape[0]} rows; with fc_cls's {k} classes "
                                  f"(+ background) it needs {rows * (k + background)}")
    return k


@dataclass
class Conversion:
    """convert_state_dict's result: the engine's tensors, and what was not copied one to one."""

    state: dict[str, torch.Tensor]
    variant: Variant
    num_classes: int
    ignored: list[str] = field(default_factory=list)  # BatchNorm's num_batches_tracked (FrozenBN has none)
    zero_rows: list[str] = field(default_factory=list)  # tensors given a zero background row


def convert_state_dict(state: Mapping[str, torch.Tensor], engine: str, source: str = "the checkpoint") -> Conversion:
    """mmdetection's tensors under the engine's names, the class rows in the engine's order. Every source tensor
    is used (or is a num_batches_tracked counter, listed as ignored); an unknown one is a ConversionError naming
    it."""
    check_engine(engine)
    variant = detect_variant(state, source)
    k = num_classes_of(state)
    result = Conversion({}, variant, k)
    unknown = []
    for key, tensor in state.items():
        if key.endswith(".num_batches_tracked"):
            result.ignored.append(key)
            continue
        name = target_name(key, engine)
        if name is None:
            unknown.append(key)
            continue
        tensor = tensor.detach().clone()
        for prefix, rows, background in CLASS_TENSORS:
            if engine == "torchvision" and key.startswith(prefix):
                # torchvision's order: the background row (mmdetection's last) first; heads without one get one of
                # zeros in front (torchvision's box regression and mask logits have one, which inference never
                # reads: it drops the background's boxes and takes the mask of the predicted class)
                if background:
                    tensor = torch.cat([tensor[-rows:], tensor[:-rows]])
                else:
                    tensor = torch.cat([tensor.new_zeros((rows, *tensor.shape[1:])), tensor])
                    result.zero_rows.append(name)
        result.state[name] = tensor
    if unknown:
        raise ConversionError(f"{source}: {len(unknown)} tensors that no part of the {variant.name} model holds "
                              f"(first: {', '.join(unknown[:5])})")
    return result


def check_fits(conversion: Conversion, model: torch.nn.Module, source: str, config: str) -> None:
    """The converted tensors are exactly the model's (names and shapes), then loaded strictly."""
    own = model.state_dict()
    state = conversion.state
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in own
             if k in state and state[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"the model's tensors {', '.join(missing[:5])} get no value ({len(missing)} in all)")
    if unexpected:
        problems.append(f"the converted {', '.join(unexpected[:5])} have no place in the model "
                        f"({len(unexpected)} in all)")
    if wrong:
        problems.append(f"shapes differ: {', '.join(wrong[:5])}")
    if problems:
        raise ConversionError(f"{source} ({conversion.variant.name}) does not fit the model of {config}: "
                              f"{'; '.join(problems)}")
    model.load_state_dict(state, strict=True)


def class_names_of(meta: Mapping, k: int, source: str) -> list[str]:
    """The checkpoint's meta CLASSES (mmdetection stores the dataset's), else COCO's when there are 80."""
    names = meta.get("CLASSES")
    if isinstance(names, (list, tuple)) and len(names) == k and all(isinstance(n, str) for n in names):
        return list(names)
    if k == len(COCO_CLASS_NAMES):
        return list(COCO_CLASS_NAMES)
    raise ConversionError(f"{source}: {k} classes, and its meta has no CLASSES list of {k} names")


# -- the two engines' checkpoints -------------------------------------------------------------------------------

@dataclass
class ConvertedCheckpoint:
    path: Path
    engine: str
    config_file: str
    conversion: Conversion
    class_names: list[str]


def convert_checkpoint(source: str | Path, output: str | Path, engine: str, config_file: str | None = None,
                       opts=()) -> ConvertedCheckpoint:
    """Reads an mmdetection checkpoint, converts it for the engine, checks it against the model that config_file
    (default: the shipped mmdet/<model>.yaml of the engine) builds, and writes it atomically to output:

    - torchvision: the trainer's layout (kind, config, model, class_names, category_ids), which
      `carafe-det-train --eval-only MODEL.WEIGHTS output` and carafe-det-predict load strictly;
    - detectron2: {'model': ...}, for MODEL.WEIGHTS of the detectron2 project's configs."""
    from .configs import resolve_config_path

    check_engine(engine)
    state, meta = read_mmdet_checkpoint(source)
    conversion = convert_state_dict(state, engine, str(source))
    config_file = resolve_config_path(config_file or f"{engine}/mmdet/{conversion.variant.name}.yaml")
    names = class_names_of(meta, conversion.num_classes, str(source))
    if engine == "torchvision":
        from .torchvision_engine import build_model, checkpoint_kind, load_torchvision_config

        cfg = load_torchvision_config(config_file, list(opts))
        cfg.MODEL.BACKBONE.WEIGHTS = ""
    else:
        from detectron2.modeling import build_model

        from .detectron2_project import load_detectron2_config

        cfg = load_detectron2_config(config_file, list(opts))
        cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    if cfg.MODEL.ROI_HEADS.NUM_CLASSES != conversion.num_classes:
        raise ConversionError(f"{source} has {conversion.num_classes} classes but {config_file} sets "
                              f"MODEL.ROI_HEADS.NUM_CLASSES {cfg.MODEL.ROI_HEADS.NUM_CLASSES}")
    check_fits(conversion, build_model(cfg), str(source), config_file)
    if engine == "torchvision":
        checkpoint = {"kind": checkpoint_kind(cfg), "iteration": 0, "config": cfg.to_dict(),
                      "model": conversion.state, "class_names": names}
        if names == COCO_CLASS_NAMES:
            checkpoint["category_ids"] = list(COCO_CATEGORY_IDS)
    else:  # detectron2's DetectionCheckpointer reads 'model'; the rest is for people
        checkpoint = {"model": conversion.state, "class_names": names,
                      "kind": f"carafe-det/detectron2/{'mask' if cfg.MODEL.MASK_ON else 'faster'}_rcnn"}
    checkpoint["converted_from"] = {"file": str(source), "model": conversion.variant.name,
                                    "mmdet_version": str(meta.get("mmdet_version", "")),
                                    "zero_background_rows": conversion.zero_rows}
    path = save_checkpoint(output, checkpoint)
    return ConvertedCheckpoint(path, engine, config_file, conversion, names)


__all__ = ["COCO_CATEGORY_IDS", "COCO_CLASS_NAMES", "Conversion", "ConversionError", "ConvertedCheckpoint",
           "ENGINES", "VARIANTS", "Variant", "convert_checkpoint", "convert_state_dict", "detect_variant",
           "read_mmdet_checkpoint", "split_checkpoint", "target_name"]
