"""A pure-PyTorch CARAFE, written from the definition: the tests compare every backend with it, and it runs
anywhere PyTorch does (any device, any dtype, double backward) as a fallback.

It loops over the k_up^2 taps: shift the zero-padded features by the tap, upsample them by nearest neighbour
(so each output pixel sees its source pixel's neighbour), weight by that tap's mask channel and add. Memory
stays at a few output-sized tensors instead of the k_up^2-fold blow-up of an unfold-based version.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ._validation import check_reassemble_args


def carafe(features: Tensor, masks: Tensor, kernel_size: int, group_size: int, scale_factor: int) -> Tensor:
    """Same contract as :func:`carafe_ops.carafe`; computes in the inputs' dtype."""
    check_reassemble_args(features, masks, kernel_size, group_size, scale_factor)
    n, c, h, w = features.shape
    k, g, s = kernel_size, group_size, scale_factor
    r = (k - 1) // 2
    padded = F.pad(features, (r, r, r, r))  # taps outside the features read zero
    masks = masks.reshape(n, g, 1, k * k, s * h, s * w)
    output = None
    for tap in range(k * k):
        dy, dx = divmod(tap, k)
        shifted = padded[:, :, dy : dy + h, dx : dx + w]  # features[y + dy - r, x + dx - r]
        upsampled = shifted.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
        term = upsampled.reshape(n, g, c // g, s * h, s * w) * masks[:, :, :, tap]
        output = term if output is None else output + term
    return output.reshape(n, c, s * h, s * w)
