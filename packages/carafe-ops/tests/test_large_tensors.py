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
