"""Every backend and dtype equals the pure-PyTorch reference on fresh random inputs, over the grid of the
operator issue: k_up in {1,3,5,7}, G in {1,2,4}, sigma in {1,2,3,4}, odd and even sizes, batch 1 and 2,
contiguous and channels_last."""

from __future__ import annotations

import pytest
import torch

from carafe_ops import carafe, reference
from carafe_ops.testing import make_inputs
from conftest import DEVICES, DTYPES, assert_agrees_with_reference, assert_repeats_bit_for_bit

SHAPES = {"batch1-odd": (1, 7, 5), "batch2-even": (2, 6, 8)}  # (N, H, W)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("s", [1, 2, 3, 4])
@pytest.mark.parametrize("g", [1, 2, 4])
@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_forward_and_backward_match_reference(k, g, s, shape, channels_last, dtype, device):
    n, h, w = shape
    c = 3 * g
    features, masks = make_inputs(n, c, h, w, k, g, s, dtype=dtype, device=device, channels_last=channels_last)
    out = carafe(features, masks, k, g, s)
    assert out.shape == (n, c, s * h, s * w) and out.dtype == dtype and out.device == features.device
    assert_agrees_with_reference(carafe, features, masks, k, g, s)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", [(2, 72, 5, 45, 5, 1, 2), (1, 96, 4, 37, 3, 2, 3), (1, 40, 3, 70, 7, 4, 4)],
                         ids=lambda c: "N{}C{}H{}W{}-k{}G{}s{}".format(*c))
def test_wide_rows_and_many_channels(case, dtype, device):
    """Rows longer than a SIMD block plus a partial vector, and more channels per group than the CPU backend
    holds at once, so that every code path of the row kernels runs."""
    n, c, h, w, k, g, s = case
    features, masks = make_inputs(n, c, h, w, k, g, s, dtype=dtype, device=device)
    assert_agrees_with_reference(carafe, features, masks, k, g, s)
    features, masks = make_inputs(n, c, h, w, k, g, s, dtype=dtype, device=device, channels_last=True)
    assert_agrees_with_reference(carafe, features, masks, k, g, s)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_views(device):
    """Slices, transposed-back tensors and expanded (stride-0) gradients are read through their strides."""
    k, g, s = 3, 2, 2
    big_features, big_masks = make_inputs(2, 8, 9, 11, k, g, s, device=device)
    features = big_features[:, 1:5, 1:8, 2:9]  # (2, 4, 7, 7), every stride irregular
    masks = big_masks[:, :, 2:16, 4:18]
    assert not features.is_contiguous() and not masks.is_contiguous()
    assert_agrees_with_reference(carafe, features, masks, k, g, s)
    features.requires_grad_(True)
    carafe(features, masks, k, g, s).sum().backward()  # the output gradient is an expanded scalar: all strides 0
    exact = features.detach().double().requires_grad_(True)
    reference.carafe(exact, masks.double(), k, g, s).sum().backward()
    torch.testing.assert_close(features.grad.double(), exact.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_output_follows_feature_layout(device):
    features, masks = make_inputs(1, 4, 5, 6, 3, 1, 2, device=device, channels_last=True)
    assert carafe(features, masks, 3, 1, 2).is_contiguous(memory_format=torch.channels_last)
    assert carafe(features.contiguous(), masks, 3, 1, 2).is_contiguous()


@pytest.mark.parametrize("device", DEVICES)
def test_nan_and_inf_propagate_as_through_the_reference(device):
    k, g, s = 3, 1, 2
    features, masks = make_inputs(1, 2, 6, 6, k, g, s, device=device)
    features[0, 0, 2, 3] = float("nan")
    features[0, 1, 4, 1] = float("inf")
    masks[0, 0, 0, 0] = float("inf")  # tap (-1, -1) of the corner output: it falls outside the features
    masks[0, 4, 7, 5] = float("nan")
    out = carafe(features, masks, k, g, s)
    expected = reference.carafe(features, masks, k, g, s)
    assert torch.isnan(expected).any() and torch.isinf(expected).any()
    torch.testing.assert_close(out, expected, equal_nan=True)


@pytest.mark.cuda
@pytest.mark.parametrize("device", [p for p in DEVICES if p != "cpu"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_nan_bits_match_torch_casts_on_cuda(device, dtype):
    """On CUDA, a NaN result has the bits of PyTorch's own CUDA cast of a float32 NaN (scalar_types.h says why
    they differ from the CPU's)."""
    features, masks = make_inputs(1, 2, 4, 4, 3, 1, 2, dtype=dtype, device=device)
    features.fill_(float("nan"))
    out = carafe(features, masks, 3, 1, 2)
    torch_nan = torch.full((1,), float("nan"), device=device).to(dtype).view(torch.int16)
    assert torch.equal(out.view(torch.int16).unique(), torch_nan)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_backward_is_deterministic(device, dtype):
    """The backward gathers instead of scattering with atomics: repeated runs are bit-identical."""
    features, masks = make_inputs(2, 16, 24, 31, 5, 2, 2, dtype=dtype, device=device)
    grad = torch.randn(2, 16, 48, 62, dtype=dtype, device=device)
    assert_repeats_bit_for_bit(lambda: torch.ops.carafe.reassemble_backward(grad, features, masks, 5, 2, 2))


def test_thread_count_does_not_change_results():
    """Forward and backward, given masks and the fused normalizer: the same bits with 1 thread and with several
    (each thread takes whole rows; every element is summed in a fixed order)."""
    features, masks = make_inputs(2, 16, 30, 33, 5, 2, 2)
    logits = torch.randn(2, 4 * 2 * 25, 30, 33)
    grad = torch.randn(2, 16, 60, 66)

    def everything():
        return (carafe(features, masks, 5, 2, 2), *torch.ops.carafe.reassemble_backward(grad, features, masks, 5, 2, 2),
                torch.ops.carafe.reassemble_normalized(features, logits, 5, 2, 2),
                *torch.ops.carafe.reassemble_normalized_backward(grad, features, logits, 5, 2, 2))

    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = everything()
        torch.set_num_threads(max(3, previous))
        many = everything()
    finally:
        torch.set_num_threads(previous)
    assert all(torch.equal(a, b) for a, b in zip(one, many))
