"""The x2 upsamplers that the detectors choose between: nearest-neighbour interpolation (the FPN baseline) or
CARAFE, behind one constructor so that a model's only difference is a string in its config."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch.nn.functional as F
from carafe_ops import CARAFEPack
from torch import Tensor, nn


@dataclass(frozen=True)
class CARAFESettings:
    """CARAFEPack's hyper-parameters; the defaults are the paper's (k_up 5, G 1, k_enc 3, C_m 64)."""

    up_kernel: int = 5
    up_group: int = 1
    encoder_kernel: int = 3
    encoder_dilation: int = 1
    compressed_channels: int = 64

    @classmethod
    def from_config(cls, section) -> "CARAFESettings":
        """From a config section with upper-case keys (UP_KERNEL, ...), as both engines write them."""
        return cls(**{name: int(section[name.upper()]) for name in cls.__dataclass_fields__})


class NearestUpsample(nn.Module):
    """Nearest-neighbour x scale_factor upsampling (F.interpolate), as in the standard FPN's top-down pathway."""

    def __init__(self, scale_factor: int = 2):
        super().__init__()
        self.scale_factor = scale_factor

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=float(self.scale_factor), mode="nearest")

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}"


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def build_upsampler(kind: str, channels: int, scale_factor: int = 2,
                    carafe: CARAFESettings = CARAFESettings()) -> nn.Module:
    """'nearest' -> NearestUpsample; 'carafe' -> CARAFEPack(channels, scale_factor, **carafe). Both keep the
    channel count, so either drops into the same place."""
    check_choice("upsample", kind, ("nearest", "carafe"))
    if kind == "nearest":
        return NearestUpsample(scale_factor)
    return CARAFEPack(channels, scale_factor, **asdict(carafe))
