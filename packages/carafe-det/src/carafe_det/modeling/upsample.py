"""The x2 upsamplers that the detectors choose between: nearest-neighbour interpolation (the FPN baseline) or
CARAFE, from carafe_ops.nn.build_upsampler, so that a model's only difference is a string in its config."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from carafe_ops import nn as carafe_nn
from torch import nn


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


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def build_upsampler(kind: str, channels: int, scale_factor: int = 2,
                    carafe: CARAFESettings = CARAFESettings()) -> nn.Module:
    """carafe_ops.nn.build_upsampler with the CARAFE settings as its options: 'nearest' -> Interpolate,
    'carafe' -> CARAFEPack(channels, scale_factor, **carafe), 'deconv' -> ConvTranspose2d. All keep the channel
    count, so each drops into the same place."""
    return carafe_nn.build_upsampler(kind, channels, scale_factor, **asdict(carafe))
