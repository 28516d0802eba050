"""UperNet with a switchable upsampler in the PPM, the FPN and the fusion; backbones; synchronized BatchNorm."""

from .backbone import BackboneWeightsError, ResNetBackbone, TinyBackbone, build_backbone
from .segmentor import UPerNetSegmentor, build_model, pad_to_multiple
from carafe_engine.sync_batchnorm import CPUSyncBatchNorm, convert_sync_batchnorm
from .upernet import UPerNetDecoder
from .upsampling import BilinearThenCARAFE, BilinearUpsample, make_upsampler

__all__ = [
    "BackboneWeightsError",
    "BilinearThenCARAFE",
    "BilinearUpsample",
    "CPUSyncBatchNorm",
    "ResNetBackbone",
    "TinyBackbone",
    "UPerNetDecoder",
    "UPerNetSegmentor",
    "build_backbone",
    "build_model",
    "convert_sync_batchnorm",
    "make_upsampler",
    "pad_to_multiple",
]
