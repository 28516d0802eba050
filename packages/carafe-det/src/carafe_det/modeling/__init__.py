"""Framework-neutral modules (plain torch.nn), used by the detectron2 project and the torchvision engine alike."""

from .fpn import TOP_LEVELS, UPSAMPLERS as FPN_UPSAMPLERS, CARAFEFPN, crop_like
from .mask_head import MASK_UPSAMPLERS, DeconvUpsample, MaskUpsamplePredictor, build_mask_upsampler
from .norm import BACKBONE_NORMS, FrozenStatsBatchNorm2d, freeze_batchnorm_statistics
from .upsample import CARAFESettings, build_upsampler

__all__ = ["BACKBONE_NORMS", "CARAFEFPN", "CARAFESettings", "DeconvUpsample", "FrozenStatsBatchNorm2d",
           "FPN_UPSAMPLERS", "MASK_UPSAMPLERS", "MaskUpsamplePredictor", "TOP_LEVELS", "build_mask_upsampler",
           "build_upsampler", "crop_like", "freeze_batchnorm_statistics"]
