"""Trained models as predictors: an RGB image in, detections out (boxes, class names, scores, masks), whichever
engine trained them. A torchvision-engine checkpoint carries its config and class names; a detectron2 model is
given as its config file and weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from carafe_engine import CheckpointError, ConfigError, load_checkpoint, load_config, select_device

from .configs import declared_engine, detectron2_available, resolve_config_path
from .torchvision_engine.model import build_model, load_model_weights


@dataclass
class Detections:
    """One image's detections, in its pixel coordinates."""

    boxes: np.ndarray  # (N, 4) x0, y0, x1, y1
    scores: np.ndarray  # (N,)
    classes: list[str]
    masks: np.ndarray | None  # (N, H, W) bool, or None for Faster R-CNN

    def above(self, threshold: float) -> "Detections":
        keep = self.scores >= threshold
        return Detections(self.boxes[keep], self.scores[keep], [c for c, k in zip(self.classes, keep) if k],
                          None if self.masks is None else self.masks[keep])

    def to_json(self) -> list[dict]:
        return [{"class": c, "score": round(float(s), 4), "box": [round(float(v), 1) for v in b]}
                for b, s, c in zip(self.boxes, self.scores, self.classes)]


def image_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float in [0, 1], what torchvision's detectors take."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255).to(device)


class TorchvisionPredictor:
    """A torchvision-engine checkpoint (model_final.pth): its own config, optionally overridden by a config file
    and KEY VALUE opts (e.g. MODEL.ROI_HEADS.SCORE_THRESH_TEST 0.3)."""

    def __init__(self, checkpoint: str | Path, config_file: str | Path | None = None, opts=(), device=None):
        state = load_checkpoint(checkpoint)
        kind = str(state.get("kind", ""))
        if not kind.startswith("carafe-det/") or "config" not in state:
            raise CheckpointError(f"{checkpoint} is not a carafe-det torchvision-engine checkpoint (kind {kind!r}); "
                                  f"for detectron2 weights give their config file too")
        # the checkpoint's config plays the defaults: a config file or override may only change keys it has
        self.cfg = load_config(state["config"], config_file, opts)
        self.cfg.MODEL.WEIGHTS = ""
        self.cfg.MODEL.BACKBONE.WEIGHTS = ""
        self.device = select_device(device, "--device")
        self.model = build_model(self.cfg)
        load_model_weights(self.model, state, checkpoint)
        self.model.to(self.device).eval()
        self.class_names = list(state["class_names"])

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> Detections:
        output = self.model([image_tensor(image, self.device)])[0]
        masks = output["masks"][:, 0].cpu().numpy() >= 0.5 if "masks" in output else None
        return Detections(output["boxes"].cpu().numpy(), output["scores"].cpu().numpy(),
                          [self.class_names[i - 1] for i in output["labels"].tolist()], masks)


class Detectron2Predictor:
    """A detectron2 model of this project: its config file, weights and KEY VALUE opts. Class names come from the
    config's test dataset (registered from DATASETS.ROOT)."""

    def __init__(self, config_file: str | Path, weights: str | Path, opts=(), device=None):
        from detectron2.data import DatasetCatalog, MetadataCatalog
        from detectron2.engine import DefaultPredictor

        from .detectron2_project import load_detectron2_config, register_config_datasets

        if not Path(weights).is_file():
            raise CheckpointError(f"checkpoint not found: {weights}")
        cfg = load_detectron2_config(config_file, opts)
        cfg.MODEL.WEIGHTS = str(weights)
        cfg.MODEL.DEVICE = str(select_device(device, "--device"))
        register_config_datasets(cfg)
        cfg.freeze()
        dataset = cfg.DATASETS.TEST[0]
        DatasetCatalog.get(dataset)  # loading the annotations records the class names in the metadata
        self.class_names = list(MetadataCatalog.get(dataset).thing_classes)
        self.predictor = DefaultPredictor(cfg)
        self.input_format = cfg.INPUT.FORMAT

    def __call__(self, image: np.ndarray) -> Detections:
        pixels = image[:, :, ::-1] if self.input_format == "BGR" else image
        instances = self.predictor(np.ascontiguousarray(pixels))["instances"].to("cpu")
        masks = instances.pred_masks.numpy() if instances.has("pred_masks") else None
        return Detections(instances.pred_boxes.tensor.numpy(), instances.scores.numpy(),
                          [self.class_names[i] for i in instances.pred_classes.tolist()], masks)


def load_predictor(checkpoint: str | Path, config_file: str | Path | None = None, opts=(), device=None):
    """A detectron2 predictor when config_file (a path or a shipped config's name) is a detectron2 config, else
    the torchvision engine's."""
    config_file = resolve_config_path(config_file)
    if config_file is not None and declared_engine(str(config_file)) is None:
        if not detectron2_available():
            raise ConfigError(f"{config_file} is a detectron2 config, and detectron2 is not installed")
        return Detectron2Predictor(config_file, checkpoint, opts, device)
    return TorchvisionPredictor(checkpoint, config_file, opts, device)
