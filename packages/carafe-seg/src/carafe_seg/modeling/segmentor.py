"""The whole model: backbone + UperNet decoder, with the padding to a multiple of 32 that the official
implementation does, so that any input size works and every stride divides exactly."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .backbone import build_backbone
from .upernet import UPerNetDecoder

OUTPUT_STRIDE = 4  # the logits are at the resolution of C2


def pad_to_multiple(images: Tensor, divisor: int) -> Tensor:
    """Zero-pads (N, C, H, W) at the bottom and right to multiples of divisor (zero is the mean colour once
    images are normalized)."""
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % divisor, -width % divisor
    return F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images


class UPerNetSegmentor(nn.Module):
    def __init__(self, backbone: nn.Module, decoder: UPerNetDecoder, size_divisibility: int = 32):
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.size_divisibility = size_divisibility

    def forward(self, images: Tensor) -> Tensor:
        """Normalized images (N, 3, H, W) -> logits (N, classes, H'/4, W'/4), H' and W' being H and W padded to
        multiples of size_divisibility. Training compares them with labels at 1/4 resolution (see train.py)."""
        return self.decoder(self.backbone(pad_to_multiple(images, self.size_divisibility)))

    def segment(self, images: Tensor, output_size=None) -> Tensor:
        """Logits at the input's resolution (N, classes, H, W), or bilinearly resized to output_size (the original
        image's size, when the input was a resized copy)."""
        height, width = images.shape[-2:]
        logits = self(images)
        logits = F.interpolate(logits, scale_factor=OUTPUT_STRIDE, mode="bilinear", align_corners=False)
        logits = logits[..., :height, :width]
        if output_size is not None and tuple(output_size) != (height, width):
            logits = F.interpolate(logits, size=tuple(output_size), mode="bilinear", align_corners=False)
        return logits


def build_model(cfg) -> UPerNetSegmentor:
    """The model a carafe-seg config describes (backbone weights loaded when MODEL.BACKBONE.WEIGHTS is set)."""
    backbone = build_backbone(cfg.MODEL.BACKBONE)
    decoder = UPerNetDecoder(
        backbone.out_channels,
        cfg.DATASETS.NUM_CLASSES,
        upsamplers=dict(cfg.MODEL.UPSAMPLER),
        carafe_cfg=cfg.MODEL.CARAFE,
        pool_scales=tuple(cfg.MODEL.DECODER.PPM_SCALES),
        ppm_dim=cfg.MODEL.DECODER.PPM_DIM,
        fpn_dim=cfg.MODEL.DECODER.FPN_DIM,
    )
    return UPerNetSegmentor(backbone, decoder, cfg.INPUT.SIZE_DIVISIBILITY)
