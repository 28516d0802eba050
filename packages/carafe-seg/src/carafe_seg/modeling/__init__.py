"""UperNet with a switchable upsampler in the PPM, the FPN and the fusion; backbones."""

from .backbone import BackboneWeightsError, DeepStemResNet, ResNetBackbone, TinyBackbone, build_backbone
from .segmentor import UPerNetSegmentor, build_model, pad_to_multiple
from .upernet import UPerNetDecoder

__all__ = [
    "BackboneWeightsError", "DeepStemResNet", "ResNetBackbone", "TinyBackbone", "UPerNetDecoder", "UPerNetSegmentor",
    "build_backbone", "build_model", "pad_to_multiple",
]
