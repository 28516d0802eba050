"""ResNet + CARAFEFPN as a detectron2 backbone (registered as build_carafe_resnet_fpn_backbone)."""

from __future__ import annotations

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.resnet import build_resnet_backbone

from ..modeling import CARAFEFPN, CARAFESettings, freeze_batchnorm_statistics


class CARAFEFPNBackbone(Backbone):
    """bottom_up features (MODEL.FPN.IN_FEATURES, e.g. res2..res5) -> CARAFEFPN -> p2..p6."""

    def __init__(self, bottom_up: Backbone, in_features: list[str], out_channels: int, upsample: str,
                 top_level: str, carafe: CARAFESettings, num_extra_levels: int = 1):
        super().__init__()
        shapes = bottom_up.output_shape()
        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        strides = [shapes[name].stride for name in self.in_features]
        self.fpn = CARAFEFPN([shapes[name].channels for name in self.in_features], out_channels,
                             num_outs=len(strides) + num_extra_levels, upsample=upsample, top_level=top_level,
                             carafe=carafe)
        strides += [strides[-1] * 2 ** (i + 1) for i in range(num_extra_levels)]
        self._out_features = [f"p{stride.bit_length() - 1}" for stride in strides]  # stride 4 -> p2, ...
        self._out_feature_strides = dict(zip(self._out_features, strides))
        self._out_feature_channels = {name: out_channels for name in self._out_features}
        # FPN_CARAFE's P6 conv joins the top-down pathway: pad to its stride so every x2 upsampling fits exactly
        # (the authors pad to 64); the standard FPN only needs the backbone's last stride
        self._size_divisibility = strides[-1] if top_level == "conv" else strides[len(self.in_features) - 1]

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def forward(self, x):
        bottom_up = self.bottom_up(x)
        outputs = self.fpn([bottom_up[name] for name in self.in_features])
        return dict(zip(self._out_features, outputs))

    def output_shape(self):
        return {name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
                for name in self._out_features}


def build_bottom_up(cfg, input_shape: ShapeSpec) -> Backbone:
    """detectron2's ResNet; MODEL.RESNETS.NORM "FrozenStatsBN" (the authors' release: BatchNorm statistics frozen,
    affine trained) is built as "BN", whose layers then keep their statistics. The stages before FREEZE_AT are
    detectron2's FrozenBatchNorm2d either way."""
    if cfg.MODEL.RESNETS.NORM != "FrozenStatsBN":
        return build_resnet_backbone(cfg, input_shape)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.RESNETS.NORM = "BN"
    return freeze_batchnorm_statistics(build_resnet_backbone(cfg, input_shape))


@BACKBONE_REGISTRY.register()
def build_carafe_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> CARAFEFPNBackbone:
    return CARAFEFPNBackbone(
        build_bottom_up(cfg, input_shape),
        cfg.MODEL.FPN.IN_FEATURES,
        cfg.MODEL.FPN.OUT_CHANNELS,
        upsample=cfg.MODEL.FPN.UPSAMPLE,
        top_level=cfg.MODEL.FPN.TOP_LEVEL,
        carafe=CARAFESettings.from_config(cfg.MODEL.CARAFE),
    )
