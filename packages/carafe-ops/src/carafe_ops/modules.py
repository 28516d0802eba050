"""CARAFE as nn.Modules, with the names, arguments, parameters and init of ``mmcv.ops`` so that models and
checkpoints move between the two unchanged."""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor, nn

from ._validation import check_hyperparameters, check_size
from .functional import _known_equal, carafe, carafe_normalized, normalize_kernels
from .reference import source_index


def resample_nearest(tensor: Tensor, size: List[int]) -> Tensor:
    """Exact nearest-neighbour resampling of (N, C, H, W) to (N, C, *size): output pixel (y, x) takes input
    pixel (y*H // OH, x*W // OW), in integer arithmetic."""
    h, w = tensor.shape[2:]
    rows = source_index(h, size[0], tensor.device)
    cols = source_index(w, size[1], tensor.device)
    return tensor.index_select(2, rows).index_select(3, cols)


class CARAFE(nn.Module):
    """The reassembly op as a module: ``forward(features, masks)``; see :func:`carafe_ops.carafe`."""

    def __init__(self, kernel_size: int, group_size: int, scale_factor: int):
        super().__init__()
        check_hyperparameters(kernel_size, group_size, scale_factor)
        self.kernel_size = kernel_size
        self.group_size = group_size
        self.scale_factor = scale_factor

    def forward(self, features: Tensor, masks: Tensor, size: Optional[List[int]] = None) -> Tensor:
        return carafe(features, masks, self.kernel_size, self.group_size, self.scale_factor, size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, group_size={self.group_size}, scale_factor={self.scale_factor}"


class CARAFEPack(nn.Module):
    """The full CARAFE upsampler: channel compressor (1x1, C -> C_m), content encoder (k_enc x k_enc,
    C_m -> sigma^2 * k_up^2 * G), pixel shuffle by sigma, softmax over each group's k_up^2 taps, reassembly.

    Args:
        channels: C, the input (and output) channels.
        scale_factor: sigma, the integer upsampling ratio.
        up_kernel: k_up, the reassembly kernel size (odd).
        up_group: G, channel groups that share a reassembly kernel.
        encoder_kernel: k_enc, the content encoder's kernel size.
        encoder_dilation: the content encoder's dilation.
        compressed_channels: C_m, the channel compressor's output channels.
        fused_normalizer: normalize the kernels inside the reassembly (``carafe_normalized``: the masks are never
            written to memory) instead of with a pixel shuffle and a softmax before it. None (default): fused
            on the CPU and CUDA, unfused on other devices and for output sizes other than sigma x the input.
            Results are the same either way.
    """

    def __init__(
        self,
        channels: int,
        scale_factor: int,
        up_kernel: int = 5,
        up_group: int = 1,
        encoder_kernel: int = 3,
        encoder_dilation: int = 1,
        compressed_channels: int = 64,
        *,
        fused_normalizer: bool | None = None,
    ):
        super().__init__()
        check_hyperparameters(up_kernel, up_group, scale_factor)
        self.fused_normalizer = fused_normalizer
        if channels % up_group != 0:
            raise ValueError(f"CARAFEPack: channels ({channels}) must be divisible by up_group ({up_group})")
        self.channels = channels
        self.scale_factor = scale_factor
        self.up_kernel = up_kernel
        self.up_group = up_group
        self.encoder_kernel = encoder_kernel
        self.encoder_dilation = encoder_dilation
        self.compressed_channels = compressed_channels
        self.channel_compressor = nn.Conv2d(channels, compressed_channels, 1)
        self.content_encoder = nn.Conv2d(
            compressed_channels,
            up_kernel * up_kernel * up_group * scale_factor * scale_factor,
            encoder_kernel,
            padding=int((encoder_kernel - 1) * encoder_dilation / 2),
            dilation=encoder_dilation,
        )
        self.init_weights()

    def init_weights(self) -> None:
        # mmcv's init: xavier-uniform on both convs, then the encoder re-drawn from N(0, 0.001^2); biases 0
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight, gain=1)
                nn.init.constant_(module.bias, 0)
        nn.init.normal_(self.content_encoder.weight, 0, 0.001)

    def kernel_normalizer(self, mask: Tensor) -> Tensor:
        """(N, sigma^2 k_up^2 G, H, W) -> softmax-normalized (N, k_up^2 G, sigma H, sigma W)."""
        return normalize_kernels(mask, self.up_kernel, self.up_group, self.scale_factor)

    def _fuse(self, x: Tensor, size: Optional[List[int]]) -> bool:
        fused = x.device.type in ["cpu", "cuda"] if self.fused_normalizer is None else bool(self.fused_normalizer)
        if not fused or size is None:
            return fused
        # the fused kernel makes sigma*H x sigma*W outputs; other sizes go through the resampled masks
        return _known_equal(size, [x.shape[2] * self.scale_factor, x.shape[3] * self.scale_factor])

    def requested_size(self, size: Optional[List[int]]) -> Optional[List[int]]:
        """The output size of a call, from forward's argument (None: sigma times the input). A subclass with a
        size of its own (carafe_ops.nn.Upsample) overrides it; a method, not super().forward, so that
        TorchScript compiles both."""
        return size

    def feature_reassemble(self, x: Tensor, mask: Tensor, size: Optional[List[int]] = None) -> Tensor:
        return carafe(x, mask, self.up_kernel, self.up_group, self.scale_factor, size)

    def forward(self, x: Tensor, size: Optional[List[int]] = None) -> Tensor:
        """x: (N, C, H, W) -> (N, C, sigma*H, sigma*W), or (N, C, *size) when an output size is given (as in
        ``F.interpolate(size=...)``; an FPN passes its lateral's size). Masks are predicted on the
        sigma*H x sigma*W grid and resampled to the output size by exact nearest neighbour, which keeps each
        output pixel's kernel the one predicted for its position in its source pixel."""
        size = self.requested_size(size)
        if size is not None and not torch.jit.is_scripting():
            size = check_size(size)
        mask = self.content_encoder(self.channel_compressor(x))
        if self._fuse(x, size):
            return carafe_normalized(x, mask, self.up_kernel, self.up_group, self.scale_factor)
        mask = self.kernel_normalizer(mask)
        if size is not None and not _known_equal(size, [mask.shape[2], mask.shape[3]]):
            mask = resample_nearest(mask, size)
        return self.feature_reassemble(x, mask, size)
