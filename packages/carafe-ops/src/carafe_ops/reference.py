"""A pure-PyTorch CARAFE, written from the definition: the tests compare every backend with it, and it runs
anywhere PyTorch does (any device, any dtype, double backward) as a fallback.

It loops over the k_up^2 taps: shift the zero-padded features by the tap, upsample them by nearest neighbour
(so each output pixel sees its source pixel's neighbour), weight by that tap's mask channel and add. Memory
stays at a few output-sized tensors instead of the k_up^2-fold blow-up of an unfold-based version.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validation import check_reassemble_args


def source_index(in_size: int, out_size: int, device: Optional[torch.device] = None) -> Tensor:
    """For each output coordinate, the input coordinate its window is centred on: floor(o * in / out), exactly
    (o // sigma when out = sigma * in) — the pixel nearest-neighbour interpolation to out_size picks."""
    return torch.arange(out_size, device=device) * in_size // out_size


def carafe(
    features: Tensor, masks: Tensor, kernel_size: int, group_size: int, scale_factor: int, size=None
) -> Tensor:
    """Same contract as :func:`carafe_ops.carafe`; computes in the inputs' dtype."""
    check_reassemble_args(features, masks, kernel_size, group_size, scale_factor, size)
    n, c, h, w = features.shape
    out_h, out_w = masks.shape[2:]
    k, g = kernel_size, group_size
    r = (k - 1) // 2
    padded = F.pad(features, (r, r, r, r))  # taps outside the features read zero
    rows = source_index(h, out_h, features.device)
    cols = source_index(w, out_w, features.device)
    masks = masks.reshape(n, g, 1, k * k, out_h, out_w)
    output = None
    for tap in range(k * k):
        dy, dx = divmod(tap, k)
        # features[source(y) + dy - r, source(x) + dx - r] for every output pixel
        upsampled = padded.index_select(2, rows + dy).index_select(3, cols + dx)
        term = upsampled.reshape(n, g, c // g, out_h, out_w) * masks[:, :, :, tap]
        output = term if output is None else output + term
    return output.reshape(n, c, out_h, out_w)
