"""Any output size: windows centred on the pixel nearest-neighbour interpolation picks, on every backend."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from carafe_ops import CARAFEPack, carafe, reference
from carafe_ops.testing import make_inputs
from conftest import DEVICES, DTYPES, assert_agrees_with_reference

SIZES = {  # (H, W) -> (OH, OW) with sigma
    "fpn-2H-1": ((25, 34), (49, 67), 2),
    "sigma3-minus-1": ((5, 7), (14, 20), 3),
    "no-phase-structure": ((4, 6), (9, 10), 2),
    "mixed": ((6, 5), (12, 9), 2),
    "smaller-than-input": ((6, 7), (4, 5), 2),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("sizes", SIZES.values(), ids=SIZES.keys())
def test_odd_sizes_match_reference(sizes, dtype, device):
    (h, w), size, s = sizes
    k, g = 3, 2
    features, _ = make_inputs(2, 6, h, w, k, g, s, dtype=dtype, device=device)
    masks = torch.randn(2, g * k * k, *size, dtype=torch.float64).to(device=device, dtype=dtype)
    out = carafe(features, masks, k, g, s, size=size)
    assert out.shape == (2, 6, *size)

    def op(x, m, k_, g_, s_):
        return carafe(x, m, k_, g_, s_, size=size)

    assert_agrees_with_reference(op, features, masks, k, g, s)


def test_reference_follows_nearest_interpolation():
    """A one-hot mask on the centre tap turns the op into nearest-neighbour upsampling to that size."""
    features = torch.randn(1, 3, 25, 34, dtype=torch.float64)
    for size in [(50, 68), (49, 67), (51, 70), (30, 40)]:
        centre = torch.zeros(1, 9, *size, dtype=torch.float64)
        centre[:, 4] = 1
        torch.testing.assert_close(carafe(features, centre, 3, 1, 2, size=size),
                                   F.interpolate(features, size=size, mode="nearest"))


def test_default_size_is_sigma_times_input():
    features, masks = make_inputs(1, 4, 5, 6, 5, 1, 3, dtype=torch.float64)
    assert torch.equal(carafe(features, masks, 5, 1, 3), carafe(features, masks, 5, 1, 3, size=(15, 18)))


@pytest.mark.parametrize("device", DEVICES)
def test_carafepack_fpn_odd_size_is_a_crop_of_the_full_output(device):
    """For sigma 2 and an output one pixel short (an FPN on an odd-sized image), every output pixel keeps its
    source pixel and its kernel: the result is the full 2H x 2W output without its last row and column."""
    torch.manual_seed(0)
    pack = CARAFEPack(16, 2, compressed_channels=8).to(device)
    torch.nn.init.normal_(pack.content_encoder.weight, 0, 0.2)
    x = torch.randn(1, 16, 25, 34, device=device)
    full = pack(x)
    odd = pack(x, size=(49, 67))
    torch.testing.assert_close(odd, full[:, :, :49, :67])
    assert pack(x, size=torch.Size([50, 68])).shape == full.shape


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_odd_size(device):
    features, _ = make_inputs(1, 4, 3, 4, 3, 2, 2, dtype=torch.float64, device=device)
    masks = torch.randn(1, 18, 5, 9, dtype=torch.float64, device=device)
    features.requires_grad_(True)
    masks.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, m: carafe(x, m, 3, 2, 2, size=(5, 9)), (features, masks))
    torch.library.opcheck(torch.ops.carafe.reassemble.default, (features, masks, 3, 2, 2))


@pytest.mark.parametrize(
    "size, error, words",
    [
        ((0, 5), ValueError, "size must be positive"),
        (7, TypeError, "size must be a pair of ints"),
        ((7.0, 5), TypeError, "size must be a pair of ints"),
        ((7, 5, 1), TypeError, "size must be a pair of ints"),
        ((9, 13), ValueError, r"masks must have shape \(N, group_size\*kernel_size\*\*2, \*size\)"),
    ],
)
def test_bad_size(size, error, words):
    features, masks = make_inputs(1, 4, 5, 6, 3, 1, 2)
    with pytest.raises(error, match=words):
        carafe(features, masks, 3, 1, 2, size=size)
    if error is not ValueError or "positive" in words:
        with pytest.raises(error, match=words):
            CARAFEPack(4, 2, compressed_channels=4)(features, size=size)
