"""Segmentation with trained checkpoints: load a carafe-seg checkpoint (it carries its config), segment an image
at the checkpoint's test size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from carafe_engine import load_checkpoint

from .config import config_from_checkpoint
from .data.transforms import normalize, resize, scaled_size
from .engine import CHECKPOINT_KIND
from .modeling import build_model


def load_predictor(path: str | Path, device: torch.device):
    """(model in eval mode, its config) from a carafe-seg checkpoint."""
    state = load_checkpoint(path, kind=CHECKPOINT_KIND)
    cfg = config_from_checkpoint(state, str(path))
    cfg.MODEL.BACKBONE.WEIGHTS = ""  # the checkpoint holds every weight; the ImageNet file need not exist here
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg


@torch.no_grad()
def segment_image(model, cfg, image: np.ndarray, device: torch.device) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 labels 1..NUM_CLASSES."""
    height, width = image.shape[:2]
    resized = resize(image, scaled_size(height, width, cfg.INPUT.TEST_SHORT_SIZE, cfg.INPUT.TEST_MAX_SIZE))
    batch = normalize(resized, cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD)[None].to(device)
    logits = model.segment(batch, output_size=(height, width))
    return (logits.argmax(1)[0] + 1).to(torch.uint8).cpu().numpy()
