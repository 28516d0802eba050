"""The functional CARAFE op, with the signature of ``mmcv.ops.carafe``."""

from __future__ import annotations

import torch
from torch import Tensor

from . import reference
from ._ops import reassemble
from ._validation import check_reassemble_args


def carafe(
    features: Tensor, masks: Tensor, kernel_size: int, group_size: int, scale_factor: int, size=None
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
    Inside ``torch.onnx.export`` the op is traced through the pure-PyTorch reference, so the exported graph
    holds standard ONNX operators only and runs in any ONNX runtime.
    """
    for name, value in (("features", features), ("masks", masks)):
        if not isinstance(value, Tensor):
            raise TypeError(f"carafe: {name} must be a torch.Tensor, got {type(value).__name__}")
    device_type = features.device.type
    if torch.is_autocast_enabled(device_type) and features.is_floating_point():
        dtype = torch.get_autocast_dtype(device_type)
        features, masks = features.to(dtype), masks.to(dtype)
    check_reassemble_args(features, masks, kernel_size, group_size, scale_factor, size)
    if torch.onnx.is_in_onnx_export():
        return reference.carafe(features, masks, kernel_size, group_size, scale_factor, size)
    return reassemble(features, masks, kernel_size, group_size, scale_factor)
