"""The Mask R-CNN head with a selectable x2 upsampler (registered as CARAFEMaskHead): detectron2's
MaskRCNNConvUpsampleHead layout (NUM_CONV 3x3 convs + ReLU, x2 upsampling, 1x1 predictor), with the upsampler and
predictor being the framework-neutral MaskUpsamplePredictor."""

from __future__ import annotations

from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling.roi_heads.mask_head import ROI_MASK_HEAD_REGISTRY, BaseMaskRCNNHead
from fvcore.nn import weight_init
from torch import nn

from ..modeling import CARAFESettings, MaskUpsamplePredictor


@ROI_MASK_HEAD_REGISTRY.register()
class CARAFEMaskHead(BaseMaskRCNNHead, nn.Sequential):
    """MODEL.ROI_MASK_HEAD.UPSAMPLE: carafe (the paper), deconv (detectron2's own head) or nearest."""

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, num_classes: int, conv_dim: int, num_conv: int, upsample: str,
                 carafe: CARAFESettings, conv_norm: str = "", **kwargs):
        super().__init__(**kwargs)
        channels = input_shape.channels
        for k in range(num_conv):
            conv = Conv2d(channels, conv_dim, kernel_size=3, padding=1, bias=not conv_norm,
                          norm=get_norm(conv_norm, conv_dim), activation=nn.ReLU())
            weight_init.c2_msra_fill(conv)
            self.add_module(f"mask_fcn{k + 1}", conv)
            channels = conv_dim
        self.upsample_predictor = MaskUpsamplePredictor(channels, num_classes, upsample=upsample, scale_factor=2,
                                                        carafe=carafe)

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        head = cfg.MODEL.ROI_MASK_HEAD
        ret.update(input_shape=input_shape, conv_dim=head.CONV_DIM, num_conv=head.NUM_CONV, conv_norm=head.NORM,
                   upsample=head.UPSAMPLE, carafe=CARAFESettings.from_config(cfg.MODEL.CARAFE),
                   num_classes=1 if head.CLS_AGNOSTIC_MASK else cfg.MODEL.ROI_HEADS.NUM_CLASSES)
        return ret

    def layers(self, x):
        for layer in self:
            x = layer(x)
        return x
