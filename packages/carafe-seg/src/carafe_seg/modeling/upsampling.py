"""The upsamplers of UperNet's three places, all called as `upsampler(x, size)` (the output size, like
`F.interpolate(size=...)`), built by carafe_ops.nn.build_upsampler: bilinear interpolation (the official
implementation's, align_corners=False) or CARAFE (CARAFEPack, whose forward takes the same explicit size; where
the ratio is not an integer, BilinearThenCARAFE)."""

from __future__ import annotations

from carafe_ops.nn import build_upsampler, upsampler_options
from torch import nn


def make_upsampler(kind: str, channels: int, scale_factor: int | None, cfg) -> nn.Module:
    """kind: 'bilinear' or 'carafe' (MODEL.UPSAMPLER). scale_factor: the integer ratio (CARAFE's sigma), or None
    where the ratio is not an integer (then bilinear to half the size and CARAFE x2). cfg: the MODEL.CARAFE
    section."""
    return build_upsampler(kind, channels, scale_factor, **upsampler_options(cfg))


__all__ = ["make_upsampler"]
