"""Partial convolution (Liu et al., ECCV 2018) with the semantics of NVIDIA's official ``PartialConv2d``.

For a window with valid-pixel count sum(M) out of sum(1) = slide_winsize:

    out        = (W^T (X ⊙ M)) · slide_winsize / sum(M) + b     where sum(M) > 0
    out        = 0                                              where sum(M) = 0
    new mask   = clamp(sum(M), 0, 1)

slide_winsize is k_h·k_w for a single-channel mask (N, 1, H, W) shared by all input channels, and
C_in·k_h·k_w for a multi-channel mask (N, C_in, H, W). Like the official module, the ratio is
slide_winsize / (sum(M) + 1e-8), the bias is taken out before the re-normalization and added back after it,
and a missing mask means "all valid" (which still re-normalizes the zero padding at the borders).

Unlike the official module this one does not cache the mask ratio between calls (a cache keyed on the input size
goes stale when the mask changes but the size does not); it always takes the mask as an argument and returns
(output, updated mask).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PartialConv2d(nn.Conv2d):
    """nn.Conv2d whose forward(input, mask) returns (output, updated_mask); mask 1 = valid pixel."""

    def __init__(self, *args, multi_channel: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if self.groups != 1:
            raise ValueError("PartialConv2d: groups must be 1 (the mask is counted over all input channels)")
        self.multi_channel = multi_channel
        mask_channels = self.in_channels if multi_channel else 1
        # all-ones window that counts the valid pixels under each output position
        self.register_buffer("mask_counter", torch.ones(1, mask_channels, *self.kernel_size), persistent=False)
        self.slide_winsize = float(mask_channels * self.kernel_size[0] * self.kernel_size[1])

    def forward(self, input: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        expected = self.in_channels if self.multi_channel else 1
        if mask is None:
            mask = input.new_ones(input.shape[0], expected, *input.shape[2:])
        if mask.dim() != 4 or mask.shape[1] != expected or mask.shape[2:] != input.shape[2:] \
                or mask.shape[0] not in (1, input.shape[0]):
            kind = "multi-channel" if self.multi_channel else "single-channel"
            raise ValueError(f"PartialConv2d ({kind}): mask of shape {tuple(mask.shape)} does not fit input "
                             f"{tuple(input.shape)}; expected (N, {expected}, {input.shape[2]}, {input.shape[3]})")
        mask = mask.to(input.dtype)
        with torch.no_grad():
            valid_count = F.conv2d(mask, self.mask_counter.to(input.dtype), stride=self.stride,
                                   padding=self.padding, dilation=self.dilation)
            update_mask = valid_count.clamp(0, 1)
            mask_ratio = self.slide_winsize / (valid_count + 1e-8) * update_mask
        raw = F.conv2d(input * mask, self.weight, None, self.stride, self.padding, self.dilation)
        output = raw * mask_ratio
        if self.bias is not None:
            output = output + self.bias.view(1, -1, 1, 1)
        output = output * update_mask
        if self.multi_channel:
            update_mask = update_mask.expand(-1, self.out_channels, -1, -1)
        return output, update_mask

    def extra_repr(self) -> str:
        return super().extra_repr() + f", multi_channel={self.multi_channel}"
