"""The upsamplers of UperNet's three places, all called as `upsampler(x, size)` (the output size, like
`F.interpolate(size=...)`): bilinear interpolation (the official implementation's, align_corners=False) or
CARAFE (carafe_ops.CARAFEPack, whose forward takes the same explicit size)."""

from __future__ import annotations

import torch.nn.functional as F
from carafe_ops import CARAFEPack
from torch import Tensor, nn


class BilinearUpsample(nn.Module):
    """The baseline: F.interpolate(x, size, mode='bilinear', align_corners=False); no parameters."""

    def forward(self, x: Tensor, size) -> Tensor:
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class BilinearThenCARAFE(nn.Module):
    """For a ratio that is not an integer (the PPM's pooled 1x1, 2x2, 3x3, 6x6 maps to the feature map's size):
    bilinear interpolation to half the output size (rounded up), then CARAFE does the last x2, to the exact
    size."""

    def __init__(self, carafe: CARAFEPack):
        super().__init__()
        if carafe.scale_factor != 2:
            raise ValueError(f"BilinearThenCARAFE: the CARAFE step must be x2, got scale_factor={carafe.scale_factor}")
        self.carafe = carafe

    def forward(self, x: Tensor, size) -> Tensor:
        height, width = size
        half = ((height + 1) // 2, (width + 1) // 2)
        return self.carafe(F.interpolate(x, size=half, mode="bilinear", align_corners=False), size=(height, width))


def carafe_pack(channels: int, scale_factor: int, cfg) -> CARAFEPack:
    """cfg: the MODEL.CARAFE section."""
    return CARAFEPack(
        channels,
        scale_factor,
        up_kernel=cfg.UP_KERNEL,
        up_group=cfg.UP_GROUP,
        encoder_kernel=cfg.ENCODER_KERNEL,
        encoder_dilation=cfg.ENCODER_DILATION,
        compressed_channels=cfg.COMPRESSED_CHANNELS,
    )


def make_upsampler(kind: str, channels: int, scale_factor: int | None, cfg) -> nn.Module:
    """kind: 'bilinear' or 'carafe'. scale_factor: the integer ratio (CARAFE's sigma), or None where the ratio is
    not an integer (then bilinear to half the size and CARAFE x2). cfg: the MODEL.CARAFE section."""
    if kind == "bilinear":
        return BilinearUpsample()
    if kind == "carafe":
        if scale_factor is None:
            return BilinearThenCARAFE(carafe_pack(channels, 2, cfg))
        return carafe_pack(channels, scale_factor, cfg)
    raise ValueError(f"unknown upsampler {kind!r}; expected 'bilinear' or 'carafe'")
