"""The functional CARAFE op, with the signature of ``mmcv.ops.carafe``."""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from . import export, reference
from ._ops import reassemble, reassemble_normalized
from ._validation import check_normalized_args, check_reassemble_args


def _autocast_inputs(features, other, other_name: str) -> tuple[Tensor, Tensor]:
    """Both inputs must be tensors; under autocast both are cast to the autocast dtype, as for a convolution."""
    for name, value in (("features", features), (other_name, other)):
        if not isinstance(value, Tensor):
            raise TypeError(f"carafe: {name} must be a torch.Tensor, got {type(value).__name__}")
    device_type = features.device.type
    if torch.is_autocast_enabled(device_type) and features.is_floating_point():
        dtype = torch.get_autocast_dtype(device_type)
        features, other = features.to(dtype), other.to(dtype)
    return features, other


def _check_output_size_scripted(features: Tensor, masks: Tensor, scale_factor: int, size: Optional[List[int]]):
    """Under TorchScript (which cannot compile _validation's checks) the one check the op itself cannot make:
    the masks' spatial size is the output size asked for. The op checks everything else when it runs."""
    if features.dim() != 4 or masks.dim() != 4:
        raise ValueError("carafe: features and masks must be 4-d tensors (N, C, H, W)")
    wanted = [features.shape[2] * scale_factor, features.shape[3] * scale_factor] if size is None else size
    if masks.shape[2] != wanted[0] or masks.shape[3] != wanted[1]:
        raise ValueError("carafe: masks must have spatial size " + str(wanted) + ", got " + str(masks.shape[2:]))


def carafe(
    features: Tensor, masks: Tensor, kernel_size: int, group_size: int, scale_factor: int,
    size: Optional[List[int]] = None,
) -> Tensor:
    """Content-aware reassembly of features (Wang et al., ICCV 2019).

    ``out[n, c, y, x] = sum_{dy, dx} masks[n, g(c)*k*k + (dy+r)*k + (dx+r), y, x]
    * features[n, c, y // s + dy, x // s + dx]`` with ``k = kernel_size``, ``r = (k-1)/2``,
    ``s = scale_factor``, ``g(c) = c // (C / group_size)``; taps outside ``features`` read zero.

    With an explicit output ``size`` (OH, OW), ``y // s`` becomes ``y * H // OH`` (and ``x // s``,
    ``x * W // OW``): each window is centred on the input pixel that nearest-neighbour interpolation to that size
    picks. That is the same pixel as ``y // s`` whenever OH = s*H, and also for an FPN's odd sizes
    (OH = 2H - 1 with s = 2), so an FPN can upsample 25x34 to 49x67 without padding the image.

    Args:
        features: (N, C, H, W) float32, float64, float16 or bfloat16, on CPU or CUDA, any memory layout.
        masks: (N, group_size * kernel_size**2, scale_factor*H, scale_factor*W), or (..., *size); same dtype and
            device. Used as given (CARAFEPack normalizes them with a softmax).
        kernel_size: k_up, odd.
        group_size: G, divides C.
        scale_factor: sigma, integer >= 1.
        size: optional output size (OH, OW), as in ``F.interpolate(size=...)``.

    Returns:
        (N, C, scale_factor*H, scale_factor*W) or (N, C, *size), channels_last if ``features`` is.

    Under autocast both inputs are cast to the autocast dtype (float16/bfloat16), as for a convolution.
    Inside ``torch.onnx.export`` the op is recorded in standard ONNX operators (:mod:`carafe_ops.export`), so
    the exported graph runs in any ONNX runtime.
    """
    if torch.jit.is_scripting():
        _check_output_size_scripted(features, masks, scale_factor, size)
        return torch.ops.carafe.reassemble(features, masks, kernel_size, group_size, scale_factor)
    features, masks = _autocast_inputs(features, masks, "masks")
    check_reassemble_args(features, masks, kernel_size, group_size, scale_factor, size)
    if torch.onnx.is_in_onnx_export():
        return _exported(features, masks, kernel_size, group_size, scale_factor, size)
    return reassemble(features, masks, kernel_size, group_size, scale_factor)


def _exported(features, masks, kernel_size, group_size, scale_factor, size):
    """What torch.onnx.export records: band products (carafe_ops.export) for sigma*H x sigma*W outputs, the
    pure-PyTorch reference for other sizes (and for sizes the exporter only knows symbolically)."""
    if size is None or _known_equal(size, [features.shape[2] * scale_factor, features.shape[3] * scale_factor]):
        return export.reassemble(features, export.carafe_masks_last(masks, group_size), kernel_size, group_size,
                                 scale_factor)
    return reference.carafe(features, masks, kernel_size, group_size, scale_factor, size)


def _known_equal(size: List[int], other: List[int]) -> bool:
    """Whether two sizes are equal numbers. Symbolic sizes (torch.export, dynamic torch.compile, the TorchScript
    tracer) count as unequal: a branch taken for the example input must not be baked into the graph."""
    if torch.jit.is_scripting():
        return size[0] == other[0] and size[1] == other[1]
    return all(type(v) is int for v in (*size, *other)) and tuple(size) == tuple(other)


def normalize_kernels(logits: Tensor, kernel_size: int, group_size: int, scale_factor: int) -> Tensor:
    """CARAFEPack's kernel normalizer: (N, sigma^2*G*k^2, H, W) logits -> pixel shuffle by sigma -> softmax over
    each group's k^2 taps -> masks (N, G*k^2, sigma*H, sigma*W)."""
    n, c, h, w = logits.shape
    s = scale_factor
    mask_c = c // (s * s)
    # F.pixel_shuffle written out (the same reshapes it does), because PyTorch's pixel_shuffle backward returns a
    # wrongly shaped gradient for an empty batch (N = 0: a mask head on an image without detections)
    masks = logits.reshape(n, mask_c, s, s, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, mask_c, s * h, s * w)
    masks = F.softmax(masks.view(n, group_size, mask_c // group_size, s * h, s * w), dim=2, dtype=masks.dtype)
    return masks.view(n, mask_c, s * h, s * w).contiguous()


def carafe_normalized(
    features: Tensor, logits: Tensor, kernel_size: int, group_size: int, scale_factor: int
) -> Tensor:
    """CARAFE with the fused kernel normalizer: equal to ``carafe(features, normalize_kernels(logits, ...), ...)``,
    but the pixel shuffle and the softmax happen inside the reassembly kernel, so the normalized masks (k_up^2*G
    values per output pixel) are never written to memory, forward or backward.

    Args:
        features: (N, C, H, W).
        logits: the content encoder's raw output, (N, scale_factor**2 * group_size * kernel_size**2, H, W).

    Autocast and ``torch.onnx.export`` as for :func:`carafe`. On CUDA the backward takes a workspace of 2 numbers
    per output pixel and group (the softmax statistics).
    """
    if torch.jit.is_scripting():
        return torch.ops.carafe.reassemble_normalized(features, logits, kernel_size, group_size, scale_factor)
    features, logits = _autocast_inputs(features, logits, "logits")
    check_normalized_args(features, logits, kernel_size, group_size, scale_factor)
    if torch.onnx.is_in_onnx_export():
        masks = export.normalized_masks_last(logits, kernel_size, group_size, scale_factor)
        return export.reassemble(features, masks, kernel_size, group_size, scale_factor)
    return reassemble_normalized(features, logits, kernel_size, group_size, scale_factor)
