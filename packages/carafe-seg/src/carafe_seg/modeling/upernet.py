"""UperNet's decoder (Xiao et al., ECCV 2018) laid out as in the official implementation
(CSAILVision/semantic-segmentation-pytorch, models.UPerNet; module names kept), with the upsampling of each of its
three places chosen by config, as in the CARAFE paper (carafe_ops.nn.build_upsampler: 'bilinear', the official
implementation's interpolation with align_corners=False, or 'carafe', CARAFEPack; both called as
`upsampler(x, size)` with the output size):

- PPM: the last stage C5 is average-pooled to 1x1, 2x2, 3x3, 6x6; each pooled map is upsampled to C5's size,
  then 1x1 conv-BN-ReLU to PPM_DIM; [C5, the four] are concatenated and a 3x3 conv-BN-ReLU (`ppm_last_conv`)
  gives P5 (FPN_DIM channels). The ratios are not integers, so CARAFE here works after a bilinear step to half the
  size (see carafe_ops.nn.BilinearThenCARAFE).
- FPN: lateral 1x1 conv-BN-ReLU (`fpn_in`) on C4, C3, C2; top-down, the running map is upsampled x2 to the
  lateral's size and added; each sum goes through a 3x3 conv-BN-ReLU (`fpn_out`).
- fusion: P3, P4, P5 are upsampled to P2's size (x2, x4, x8: with CARAFE one CARAFEPack per level with
  sigma = 2, 4, 8), concatenated with P2, 3x3 conv-BN-ReLU to FPN_DIM, 1x1 conv to the classes (`conv_last`).

The output is the class logits at 1/4 of the input resolution (the stride of C2).
"""

from __future__ import annotations

import torch
from carafe_ops import CARAFEPack
from carafe_ops.nn import build_upsampler, upsampler_options
from torch import Tensor, nn

from .backbone import conv_bn_relu


class UPerNetDecoder(nn.Module):
    """in_channels: the channels of C2..C5. upsamplers: {'PPM': kind, 'FPN': kind, 'FUSION': kind} with kind
    'bilinear' or 'carafe'. carafe_cfg: CARAFEPack's hyperparameters (the MODEL.CARAFE section)."""

    def __init__(self, in_channels, num_classes: int, upsamplers: dict, carafe_cfg, pool_scales=(1, 2, 3, 6),
                 ppm_dim: int = 512, fpn_dim: int = 512):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"UPerNetDecoder: expected the channels of 4 stages (C2..C5), got {list(in_channels)}")
        top, options = in_channels[-1], upsampler_options(carafe_cfg)

        self.ppm_pooling = nn.ModuleList(nn.AdaptiveAvgPool2d(scale) for scale in pool_scales)
        self.ppm_upsample = nn.ModuleList(build_upsampler(upsamplers["PPM"], top, None, **options) for _ in pool_scales)
        self.ppm_conv = nn.ModuleList(conv_bn_relu(top, ppm_dim, kernel_size=1) for _ in pool_scales)
        self.ppm_last_conv = conv_bn_relu(top + len(pool_scales) * ppm_dim, fpn_dim)

        self.fpn_in = nn.ModuleList(conv_bn_relu(c, fpn_dim, kernel_size=1) for c in in_channels[:-1])
        self.fpn_upsample = nn.ModuleList(build_upsampler(upsamplers["FPN"], fpn_dim, 2, **options)
                                          for _ in in_channels[:-1])
        # one level deeper than needed, as the official code nests it (fpn_out.i.0.0.weight), so its weights load
        self.fpn_out = nn.ModuleList(nn.Sequential(conv_bn_relu(fpn_dim, fpn_dim)) for _ in in_channels[:-1])

        # level i (P3, P4, P5 for i = 1, 2, 3) is 2**i times coarser than P2
        self.fusion_upsample = nn.ModuleList(build_upsampler(upsamplers["FUSION"], fpn_dim, 2**level, **options)
                                             for level in range(1, 4))
        self.conv_last = nn.Sequential(conv_bn_relu(len(in_channels) * fpn_dim, fpn_dim),
                                       nn.Conv2d(fpn_dim, num_classes, kernel_size=1))
        # the official decoder init (kaiming-normal convs, BN weight 1 / bias 1e-4); CARAFEPack keeps its own
        carafe_modules = {m for pack in self.modules() if isinstance(pack, CARAFEPack) for m in pack.modules()}
        for module in (m for m in self.modules() if m not in carafe_modules):
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.constant_(module.bias, 1e-4)

    def forward(self, features: list[Tensor]) -> Tensor:
        c5 = features[-1]
        pooled = [conv(up(pool(c5), c5.shape[-2:])) for pool, up, conv in
                  zip(self.ppm_pooling, self.ppm_upsample, self.ppm_conv)]
        f = self.ppm_last_conv(torch.cat([c5, *pooled], 1))
        pyramid = [f]  # P5, P4, P3, P2 (coarse to fine)
        for i in reversed(range(len(features) - 1)):
            lateral = self.fpn_in[i](features[i])
            f = lateral + self.fpn_upsample[i](f, lateral.shape[-2:])
            pyramid.append(self.fpn_out[i](f))
        pyramid.reverse()  # P2..P5
        size = pyramid[0].shape[-2:]
        fused = [pyramid[0]] + [up(p, size) for up, p in zip(self.fusion_upsample, pyramid[1:])]
        return self.conv_last(torch.cat(fused, 1))
