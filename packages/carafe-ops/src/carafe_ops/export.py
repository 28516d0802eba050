"""CARAFE in standard operators, for export: what ``torch.onnx.export`` records for the op (the custom op itself
cannot go into an ONNX graph that every runtime runs).

The reassembly is written as band matrix products. For output row (h, i), tap row dy and a block of B output
columns (its source columns wb*B .. wb*B + B - 1), the B*sigma outputs are a product

    Y[(bl, j), c] = sum over (dy, x) of Band[(bl, j), (dy, x)] * X[h + dy, wb*B + x, c],   x < B + k - 1,

where Band[(bl, j), (dy, bl + dx)] = M[tap (dy, dx), output (h, i), (wb*B + bl, j)] and zero elsewhere: one
MatMul per (h, i, block) over a window of B + k - 1 input columns instead of k^2 passes over the whole output.
The band is made from the masks with pads and reshapes (a row-wise skew), the windows with one Gather; the
output and the inputs are transposed between NCHW and channels-last once each. Operators: Pad, Reshape,
Transpose, Slice, Gather, MatMul, Concat (and Range, Mul, Add for the window indices; Softmax for CARAFEPack's
kernels): ONNX opset 17 and TensorRT's ONNX parser support every one, in float32 and float16, with dynamic
spatial sizes.

Memory: the inputs' transposed copies, the band (B + k - 1 values per tap row and output, i.e. (B + k - 1)/k
times the masks' size; B is chosen so that it stays below the output's size wherever the masks do) and the
input windows, computed for slices of the channels small enough that a slice's windows are no larger than the
output. The largest value in the graph is the output padded to whole blocks of B columns; no k^2-fold copy of
the features is ever made.

Only sigma*H x sigma*W outputs take this path; other output sizes use :func:`carafe_ops.reference.carafe`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

def block_size(channels: int, kernel_size: int, group_size: int) -> int:
    """B, the input columns a band product covers: 8 (fewer, larger products) where the band's intermediates
    (about G*k*(k + B) values per output pixel and channel group) stay smaller than the output, else 4."""
    return 8 if group_size * kernel_size * (kernel_size + 8) <= channels else 4


def _skew_rows(a: Tensor) -> Tensor:
    """a (..., R, Cc) -> (..., R, Cc + R - 1) with row b shifted right by b, zeros elsewhere."""
    rows, cols = a.shape[-2], a.shape[-1]
    lead = a.shape[:-2]
    flat = F.pad(a, (0, rows)).reshape(*lead, rows * (cols + rows))[..., : rows * (cols + rows - 1)]
    return flat.reshape(*lead, rows, cols + rows - 1)


def _band(masks: Tensor, k: int, s: int, block: int) -> Tensor:
    """masks (n, g, h, s, wb, B, s, k, k) (output row (h, i), column (wb, bl, j), tap (dy, dx)) -> the band
    (n, g, h, s, wb, B*s, k*(B + k - 1)): rows (bl, j), columns (dy, x) with x = bl + dx."""
    n, g, h, _, wb = masks.shape[:5]
    width = block + k - 1
    segment = k + block  # k taps and B zeros: a shift by bl < B stays inside the segment
    a = masks.reshape(n, g, h, s, wb, block, s * k, k)
    a = F.pad(a, (0, block)).reshape(n, g, h, s, wb, block, s * k * segment)
    band = _skew_rows(a)[..., : s * k * segment].reshape(n, g, h, s, wb, block, s * k, segment)[..., :width]
    return band.reshape(n, g, h, s, wb, block * s, k * width)


def _channel_slices(channels: int, k: int, s: int, block: int) -> list[int]:
    """Slice sizes of a group's channels such that a slice's input windows (k * (B + k - 1) values per input pixel
    and channel, for B*s*s outputs) are no larger than the output."""
    count = min(channels, math.ceil(k * (block + k - 1) / (block * s * s)))
    size = math.ceil(channels / count)
    return [min(size, channels - start) for start in range(0, channels, size)]


def reassemble(features: Tensor, masks_last: Tensor, kernel_size: int, group_size: int, scale_factor: int) -> Tensor:
    """The op in standard operators. masks_last: the masks with the taps last, (N, G, sigma*H, sigma*W, k*k)
    (carafe_masks_last makes it from the op's masks, normalized_masks_last from CARAFEPack's logits).
    Returns (N, C, sigma*H, sigma*W)."""
    n, c, h, w = features.shape
    k, g, s = kernel_size, group_size, scale_factor
    r = (k - 1) // 2
    cg = c // g
    block = block_size(c, k, g)
    width = block + k - 1
    wb = (w + block - 1) // block
    padded_w = wb * block
    row = padded_w + 2 * r
    # masks: columns padded to whole blocks (zero masks: those outputs are cut off at the end)
    masks_last = F.pad(masks_last, (0, 0, 0, s * (padded_w - w)))
    band = _band(masks_last.reshape(n, g, h, s, wb, block, s, k, k), k, s, block)
    # features: zero-padded by r (and to whole blocks), channels last: (n, g, (h + 2r) * row, cg)
    padded = F.pad(features, (r, r + padded_w - w, r, r)).reshape(n, g, cg, (h + 2 * r) * row).transpose(2, 3)
    # the window of block (h, wb) for tap row dy: input pixels (h + dy) * row + wb * B + x, x < B + k - 1
    device = features.device
    index = ((torch.arange(h, device=device) * row).reshape(h, 1, 1, 1)
             + (torch.arange(wb, device=device) * block).reshape(1, wb, 1, 1)
             + (torch.arange(k, device=device) * row).reshape(1, 1, k, 1)
             + torch.arange(width, device=device).reshape(1, 1, 1, width)).reshape(-1)
    outputs = []
    start = 0
    for size in _channel_slices(cg, k, s, block):
        part = padded[..., start:start + size]
        windows = part.index_select(2, index).reshape(n, g, h, 1, wb, k * width, size)
        out = torch.matmul(band, windows)  # (n, g, h, s, wb, B*s, size): rows (bl, j) of output row (h, i)
        outputs.append(out.reshape(n, g, s * h * s * padded_w, size).transpose(2, 3))
        start += size
    out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, 2)
    return out.reshape(n, c, s * h, s * padded_w)[..., : s * w]


def carafe_masks_last(masks: Tensor, group_size: int) -> Tensor:
    """The op's masks (N, G*k*k, OH, OW) as (N, G, OH, OW, k*k)."""
    n, mc, oh, ow = masks.shape
    return masks.reshape(n, group_size, mc // group_size, oh * ow).transpose(2, 3).reshape(
        n, group_size, oh, ow, mc // group_size)


def normalized_masks_last(logits: Tensor, kernel_size: int, group_size: int, scale_factor: int) -> Tensor:
    """CARAFEPack's kernels from the content encoder's logits (N, sigma^2*G*k^2, H, W): pixel shuffle and softmax
    over the taps, made directly in the (N, G, sigma*H, sigma*W, k*k) layout (one transpose, a softmax over the
    last axis)."""
    n, _, h, w = logits.shape
    k2, s = kernel_size * kernel_size, scale_factor
    shuffled = logits.reshape(n, group_size, k2, s, s, h, w).permute(0, 1, 5, 3, 6, 4, 2)  # n g h i w j t
    return F.softmax(shuffled.reshape(n, group_size, s * h, s * w, k2), dim=-1)
