"""PartialConv2d against values worked out by hand from the official module's definition:
out = W^T(X ⊙ M) · slide_winsize / sum(M) + b where sum(M) > 0, else 0; new mask = clamp(sum(M), 0, 1)."""

from __future__ import annotations

import pytest
import torch

from carafe_inpaint import PartialConv2d

# x = 1..16 row by row; the mask hides the top-left 3x3 block
X = torch.arange(1.0, 17.0).view(1, 1, 4, 4)
M = torch.tensor([[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1], [1, 1, 1, 1]], dtype=torch.float32).view(1, 1, 4, 4)


def ones_conv(bias: float | None, **kwargs) -> PartialConv2d:
    conv = PartialConv2d(1, 1, 3, padding=1, bias=bias is not None, **kwargs)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        if bias is not None:
            conv.bias.fill_(bias)
    return conv


def test_single_channel_values_by_hand():
    out, new_mask = ones_conv(bias=0.5)(X, M)
    # (1, 2): window rows 0..2, cols 1..3; valid pixels 4, 8, 12 -> sum 24 over 3 of 9: 24 * 9/3 + 0.5
    assert out[0, 0, 1, 2].item() == pytest.approx(72.5)
    # (2, 2): rows 1..3, cols 1..3; valid 8, 12, 14, 15, 16 -> 65 over 5 of 9: 65 * 9/5 + 0.5
    assert out[0, 0, 2, 2].item() == pytest.approx(117.5)
    # (3, 3): rows 2..4, cols 2..4 (row 4, col 4 are padding); valid 12, 15, 16 -> 43 * 9/3 + 0.5
    assert out[0, 0, 3, 3].item() == pytest.approx(129.5)
    # (3, 0): rows 2..4, cols -1..1; valid 13, 14 -> 27 * 9/2 + 0.5
    assert out[0, 0, 3, 0].item() == pytest.approx(122.0)
    # windows with no valid pixel give 0 (the bias is not added) and a 0 in the new mask
    hole = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(out[0, 0][hole], torch.zeros(4))
    assert torch.equal(new_mask[0, 0], (~hole).float())


def test_without_bias_and_without_mask():
    out, _ = ones_conv(bias=None)(X, M)
    assert out[0, 0, 1, 2].item() == pytest.approx(72.0)
    # no mask = all valid: the zero padding is re-normalized away, so a constant image stays constant
    out, new_mask = ones_conv(bias=None)(torch.full((2, 1, 5, 5), 2.0))
    assert torch.allclose(out, torch.full_like(out, 18.0))  # 2 * 9 everywhere, corners included (2 * 4 * 9/4)
    assert torch.equal(new_mask, torch.ones(2, 1, 5, 5))


def test_multi_channel_mask_counts_over_channels():
    conv = PartialConv2d(2, 1, 1, multi_channel=True)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([2.0, 7.0]).view(1, 2, 1, 1))
        conv.bias.fill_(1.0)
    x = torch.tensor([3.0, 5.0]).view(1, 2, 1, 1).expand(1, 2, 1, 3).contiguous()
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]).view(1, 2, 1, 3)
    out, new_mask = conv(x, mask)
    # pixel 0: only channel 0 valid, 1 of slide_winsize 2 -> (2*3) * 2/1 + 1; pixel 1: both -> 2*3 + 7*5 + 1; pixel 2: none
    assert out[0, 0, 0].tolist() == pytest.approx([13.0, 42.0, 0.0])
    assert new_mask.shape == (1, 1, 1, 3) and new_mask[0, 0, 0].tolist() == [1.0, 1.0, 0.0]


def test_multi_channel_equals_single_channel_for_a_shared_mask():
    torch.manual_seed(0)
    single = PartialConv2d(3, 4, 3, padding=2, dilation=2)
    multi = PartialConv2d(3, 4, 3, padding=2, dilation=2, multi_channel=True)
    multi.load_state_dict(single.state_dict())
    x = torch.randn(2, 3, 9, 11)
    mask = (torch.rand(2, 1, 9, 11) > 0.6).float()
    out_single, mask_single = single(x, mask)
    out_multi, mask_multi = multi(x, mask.expand(-1, 3, -1, -1))
    assert torch.allclose(out_single, out_multi, atol=1e-5)
    assert torch.equal(mask_multi, mask_single.expand(-1, 4, -1, -1))


def test_hole_pixels_get_no_gradient_and_strides_work():
    conv = PartialConv2d(1, 2, 3, stride=2, padding=1)
    x = X.clone().requires_grad_(True)
    out, new_mask = conv(x, M)
    assert out.shape == (1, 2, 2, 2) and new_mask.shape == (1, 1, 2, 2)
    out.sum().backward()
    assert torch.equal(x.grad[M == 0], torch.zeros(int((M == 0).sum())))
    assert (x.grad[M == 1] != 0).any()


def test_a_mask_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"expected \(N, 1, 4, 4\)"):
        ones_conv(bias=None)(X, torch.ones(1, 1, 3, 4))
    with pytest.raises(ValueError, match="multi-channel"):
        PartialConv2d(2, 1, 1, multi_channel=True)(torch.ones(1, 2, 2, 2), torch.ones(1, 1, 2, 2))
