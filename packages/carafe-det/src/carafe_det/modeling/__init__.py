"""Framework-neutral modules (plain torch.nn), used by the detectron2 project and the torchvision engine alike."""

from .fpn import TOP_LEVELS, UPSAMPLERS as FPN_UPSAMPLERS, CARAFEFPN, crop_like
from .mask_head import MASK_UPSAMPLERS, DeconvUpsample, MaskUpsamplePredictor, build_mask_upsampler
from .upsample import CARAFESettings, build_upsampler

__all__ = [
    "CARAFEFPN",
    "CARAFESettings",
    "DeconvUpsample",
    "FPN_UPSAMPLERS",
    "MASK_UPSAMPLERS",
    "MaskUpsamplePredictor",
    "TOP_LEVELS",
    "build_mask_upsampler",
    "build_upsampler",
    "crop_like",
]
