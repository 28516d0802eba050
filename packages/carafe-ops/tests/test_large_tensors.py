"""Tensors of more than 2^31 elements index correctly (64-bit offsets everywhere). Needs ~5 GB of memory."""

from __future__ import annotations

import pytest
import torch

from carafe_ops import carafe
from conftest import DEVICES

pytestmark = pytest.mark.heavy


@pytest.mark.parametrize("device", DEVICES)
def test_masks_beyond_two_to_the_31_elements(device):
    k, s, h, w = 7, 4, 1700, 1700
    features = torch.randn(1, 1, h, w, dtype=torch.bfloat16, device=device)
    masks = torch.empty(1, k * k, s * h, s * w, dtype=torch.bfloat16, device=device)
    assert masks.numel() > 2**31
    masks.uniform_(0, 1)
    out = carafe(features, masks, k, 1, s)
    # check outputs near the far end, where offsets into masks exceed 2^31
    r = k // 2
    padded = torch.nn.functional.pad(features.double(), (r, r, r, r))
    for oy, ox in [(s * h - 1, s * w - 1), (s * h - 5, 17), (4000, s * w - 2)]:
        window = padded[0, 0, oy // s : oy // s + k, ox // s : ox // s + k].reshape(-1)
        expected = (masks[0, :, oy, ox].double() * window).sum()
        torch.testing.assert_close(out[0, 0, oy, ox].double(), expected, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_gradients_beyond_two_to_the_31_elements(device):
    """The backward on channels_last tensors whose output gradient has more than 2^31 elements: row offsets
    (OW * C per row) reach past 2^31 within one image, where 32-bit offsets would wrap."""
    k, g, s, c, h, w = 5, 1, 2, 256, 1450, 1450
    layout = {"dtype": torch.bfloat16, "device": device, "memory_format": torch.channels_last}
    features = torch.empty(1, c, h, w, **layout).normal_()
    masks = torch.empty(1, g * k * k, s * h, s * w, **layout).uniform_(0, 1)
    grad = torch.empty(1, c, s * h, s * w, **layout).uniform_(-1, 1)
    assert grad.numel() > 2**31
    grad_features, grad_masks = torch.ops.carafe.reassemble_backward(grad, features, masks, k, g, s)
    r = k // 2
    # dL/dX[c, y, x] = sum over the outputs (oy, ox) whose window holds (y, x) of M[tap, oy, ox] * dY[c, oy, ox]
    for y, x, ch in [(h - 1, w - 1, c - 1), (h - 3, 5, 17), (700, w - 2, 200)]:
        expected = torch.zeros((), dtype=torch.float64)
        for oy in range(max(0, s * (y - r)), min(s * h, s * (y + r + 1))):
            for ox in range(max(0, s * (x - r)), min(s * w, s * (x + r + 1))):
                dy, dx = y - oy // s + r, x - ox // s + r
                if 0 <= dy < k and 0 <= dx < k:
                    expected += masks[0, dy * k + dx, oy, ox].double().cpu() * grad[0, ch, oy, ox].double().cpu()
        torch.testing.assert_close(grad_features[0, ch, y, x].double().cpu(), expected, rtol=2e-2, atol=2e-2)
    # dL/dM[tap, oy, ox] = sum over channels of dY[c, oy, ox] * X[c, oy // s + dy - r, ox // s + dx - r]
    for oy, ox, tap in [(s * h - 1, s * w - 1, 0), (s * h - 4, 9, 12), (1500, s * w - 3, 24)]:
        dy, dx = divmod(tap, k)
        sy, sx = oy // s + dy - r, ox // s + dx - r
        inside = 0 <= sy < h and 0 <= sx < w
        expected = (grad[0, :, oy, ox].double() * features[0, :, sy, sx].double()).sum() if inside else 0.0
        torch.testing.assert_close(grad_masks[0, tap, oy, ox].double().cpu(), torch.as_tensor(expected).double().cpu(),
                                   rtol=2e-2, atol=5e-2)
