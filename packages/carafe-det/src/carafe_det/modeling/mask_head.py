"""The tail of the Mask R-CNN mask head: the x2 upsampler of the 14x14 RoI features and the 1x1 logits conv.

The baseline upsampler is a 2x2 stride-2 deconvolution followed by ReLU (Mask R-CNN, mmdetection's and
detectron2's mask heads); the paper replaces it with CARAFE (mmdetection's FCNMaskHead with
upsample_cfg type='carafe', scale_factor 2: the CARAFEPack's output goes to the logits conv without a ReLU).
"""

from __future__ import annotations

from carafe_ops import nn as carafe_nn
from torch import Tensor, nn

from .upsample import CARAFESettings, build_upsampler, check_choice

MASK_UPSAMPLERS = ("deconv", "nearest", "carafe")


class DeconvUpsample(nn.Sequential):
    """ConvTranspose2d(k = stride = scale_factor) + ReLU, the Mask R-CNN baseline."""

    def __init__(self, channels: int, scale_factor: int = 2):
        super().__init__()
        self.deconv = carafe_nn.build_upsampler("deconv", channels, scale_factor, deconv_kernel=scale_factor)
        self.relu = nn.ReLU(inplace=True)
        nn.init.kaiming_normal_(self.deconv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.deconv.bias)


def build_mask_upsampler(kind: str, channels: int, scale_factor: int = 2,
                         carafe: CARAFESettings = CARAFESettings()) -> nn.Module:
    check_choice("mask head upsample", kind, MASK_UPSAMPLERS)
    if kind == "deconv":
        return DeconvUpsample(channels, scale_factor)
    return build_upsampler(kind, channels, scale_factor, carafe)


class MaskUpsamplePredictor(nn.Module):
    """(R, C, 14, 14) RoI features -> upsampler -> 1x1 conv -> (R, num_classes, 28, 28) mask logits.

    Used by both engines: as torchvision's `roi_heads.mask_predictor`, and as the end of the detectron2 mask
    head (after its 4 convs)."""

    def __init__(self, channels: int, num_classes: int, upsample: str = "carafe", scale_factor: int = 2,
                 carafe: CARAFESettings = CARAFESettings()):
        super().__init__()
        self.upsample = build_mask_upsampler(upsample, channels, scale_factor, carafe)
        self.mask_fcn_logits = nn.Conv2d(channels, num_classes, 1)
        # small logits at the start (detectron2's mask predictor init)
        nn.init.normal_(self.mask_fcn_logits.weight, std=0.001)
        nn.init.zeros_(self.mask_fcn_logits.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.mask_fcn_logits(self.upsample(x))


__all__ = ["DeconvUpsample", "MASK_UPSAMPLERS", "MaskUpsamplePredictor", "build_mask_upsampler"]
