"""The feature pyramid of the CARAFE paper, laid out as the authors' FPN_CARAFE (mmdetection,
mmdet/models/necks/fpn_carafe.py), with the top-down upsampler chosen by one argument.

Layout, for backbone features C2..C5 (fine to coarse) and num_outs = 5:

- lateral_convs: a 1x1 conv per backbone level (C_i -> out_channels), no activation, no norm.
- the top level: with top_level='conv' (FPN_CARAFE) a 3x3 stride-2 conv on C5 makes a sixth lateral, which
  then takes part in the top-down pathway like the others; with top_level='maxpool' (the standard FPN of the
  paper's baselines) P6 is a stride-2 subsampling of P5 and the pathway starts at C5.
- top-down: lateral_{i-1} += crop(upsample_modules[i-1](lateral_i)), coarse to fine; the x2 upsampled map is
  cropped to the lateral's size (the authors' `tensor_add`), which only matters when a size is odd.
- fpn_convs: a 3x3 conv on every merged lateral gives the outputs P2..P6.

upsample='nearest' with top_level='maxpool' is exactly the standard FPN (torchvision's FeaturePyramidNetwork with
LastLevelMaxPool, detectron2's FPN with LastLevelMaxPool); upsample='carafe' with top_level='conv' is
FPN_CARAFE with the paper's settings: four CARAFEPacks of 74,148 parameters each at 256 channels.
"""

from __future__ import annotations

from typing import List, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .upsample import CARAFESettings, build_upsampler, check_choice

UPSAMPLERS = ("nearest", "carafe")
TOP_LEVELS = ("conv", "maxpool")


def crop_like(tensor: Tensor, reference: Tensor) -> Tensor:
    """tensor's top-left part of reference's spatial size (tensor is at least as large)."""
    height, width = reference.shape[-2], reference.shape[-1]
    if tensor.shape[-2] < height or tensor.shape[-1] < width:
        raise ValueError("FPN top-down: upsampled map " + str(list(tensor.shape[-2:])) + " is smaller than the "
                         "lateral " + str([height, width]) + "; backbone levels must halve in size (ceil) from one "
                         "to the next")
    return tensor[..., :height, :width]


class CARAFEFPN(nn.Module):
    """Feature pyramid with a CARAFE (or nearest-neighbour) top-down pathway.

    Args:
        in_channels: channels of the backbone levels, fine to coarse (ResNet-50: [256, 512, 1024, 2048]).
        out_channels: the pyramid's channels (256).
        num_outs: pyramid levels to output; levels past the backbone's are extra (P6, ...).
        upsample: 'carafe' or 'nearest', the top-down x2 upsampler.
        top_level: 'conv' (FPN_CARAFE: stride-2 convs make the extra levels, which join the top-down pathway)
            or 'maxpool' (standard FPN: extra levels are stride-2 subsamplings of the top output).
        carafe: CARAFEPack settings (k_up, G, k_enc, dilation, C_m).

    forward(features) takes the backbone levels (fine to coarse) and returns num_outs maps, fine to coarse.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, num_outs: int = 5,
                 upsample: str = "carafe", top_level: str = "conv", carafe: CARAFESettings = CARAFESettings()):
        super().__init__()
        in_channels = list(in_channels)
        if len(in_channels) < 1:
            raise ValueError("CARAFEFPN: in_channels must list at least one backbone level")
        if num_outs < len(in_channels):
            raise ValueError(f"CARAFEFPN: num_outs ({num_outs}) must be at least the number of backbone levels "
                             f"({len(in_channels)})")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.upsample = check_choice("CARAFEFPN upsample", upsample, UPSAMPLERS)
        self.top_level = check_choice("CARAFEFPN top_level", top_level, TOP_LEVELS)
        extra = num_outs - len(in_channels)

        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        if top_level == "conv":
            # the first extra level reads C5 itself, later ones the previous extra lateral (as FPN_CARAFE)
            self.lateral_convs.extend(
                nn.Conv2d(in_channels[-1] if i == 0 else out_channels, out_channels, 3, stride=2, padding=1)
                for i in range(extra))
        pathway_levels = len(self.lateral_convs)
        self.upsample_modules = nn.ModuleList(
            build_upsampler(upsample, out_channels, 2, carafe) for _ in range(pathway_levels - 1))
        self.fpn_convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1)
                                       for _ in range(pathway_levels))
        self.init_weights()

    def init_weights(self) -> None:
        # FPN_CARAFE's init: xavier-uniform convs, zero biases; the CARAFEPacks keep their own init
        for convs in (self.lateral_convs, self.fpn_convs):
            for conv in convs:
                nn.init.xavier_uniform_(conv.weight)
                nn.init.zeros_(conv.bias)

    def forward(self, features: List[Tensor]) -> List[Tensor]:
        # written as TorchScript accepts it: module lists are iterated, never indexed by a variable
        if len(features) != len(self.in_channels):
            raise ValueError("CARAFEFPN: expected " + str(len(self.in_channels)) + " backbone levels, got " +
                             str(len(features)))
        laterals: List[Tensor] = []
        for i, conv in enumerate(self.lateral_convs):
            if i < len(features):
                laterals.append(conv(features[i]))
            else:  # an extra level: the first reads C5, later ones the previous extra lateral (as FPN_CARAFE)
                laterals.append(conv(features[-1] if i == len(features) else laterals[-1]))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + crop_like(self.upsample_level(laterals[i], i - 1), laterals[i - 1])
        outs: List[Tensor] = []
        for i, conv in enumerate(self.fpn_convs):
            outs.append(conv(laterals[i]))
        while len(outs) < self.num_outs:  # top_level='maxpool': P6 = P5 subsampled by 2 (kernel 1, as both FPNs)
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return outs

    def upsample_level(self, x: Tensor, index: int) -> Tensor:
        """upsample_modules[index](x)."""
        out = x
        for i, module in enumerate(self.upsample_modules):
            if i == index:
                out = module(x)
        return out
