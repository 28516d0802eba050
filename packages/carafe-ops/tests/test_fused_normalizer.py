"""The fused kernel normalizer (carafe_normalized): equal to pixel shuffle + softmax + the op, on every backend."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import carafe_ops
from carafe_ops import CARAFEPack, carafe_normalized, normalize_kernels
from carafe_ops.testing import compare_normalized_with_reference, make_inputs
from conftest import DEVICES, DTYPES, assert_repeats_bit_for_bit


def make_logits(n, c, h, w, k, g, s, dtype=torch.float32, device="cpu", channels_last=False):
    features, _ = make_inputs(n, c, h, w, k, g, s, dtype=dtype, device=device, channels_last=channels_last)
    logits = (2 * torch.randn(n, s * s * g * k * k, h, w, dtype=torch.float64)).to(device=device, dtype=dtype)
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    return features, logits


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("s", [1, 2, 3, 4])
@pytest.mark.parametrize("g", [1, 2, 4])
@pytest.mark.parametrize("k", [1, 3, 5, 7, 9])
def test_fused_equals_unfused(k, g, s, channels_last, dtype, device):
    n, h, w = (1, 5, 7) if (k + g + s) % 2 else (2, 4, 37)  # odd sizes, and rows longer than a SIMD block
    features, logits = make_logits(n, 3 * g, h, w, k, g, s, dtype=dtype, device=device, channels_last=channels_last)
    for name, (error, allowed) in compare_normalized_with_reference(
        carafe_normalized, features, logits, k, g, s
    ).items():
        assert error <= allowed, f"{name}: max error {error:.3g} > allowed {allowed:.3g}"


@pytest.mark.parametrize("case", [(1, 2, 3, 4, 3, 1, 2), (1, 4, 2, 3, 3, 2, 3), (2, 2, 3, 3, 1, 2, 2)],
                         ids=lambda c: "N{}C{}H{}W{}-k{}G{}s{}".format(*c))
@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(case, device):
    features, logits = make_logits(*case, dtype=torch.float64, device=device)
    features.requires_grad_(True)
    logits.requires_grad_(True)
    k, g, s = case[4:]
    assert torch.autograd.gradcheck(lambda x, l: carafe_normalized(x, l, k, g, s), (features, logits))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    features, logits = make_logits(2, 4, 5, 6, 3, 2, 2, device=device)
    for requires_grad in (False, True):
        args = (features.clone().requires_grad_(requires_grad), logits.clone().requires_grad_(requires_grad), 3, 2, 2)
        torch.library.opcheck(torch.ops.carafe.reassemble_normalized.default, args)
    grad = torch.randn(2, 4, 10, 12, device=device)
    torch.library.opcheck(torch.ops.carafe.reassemble_normalized_backward.default, (grad, features, logits, 3, 2, 2))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_backward_is_deterministic(device, dtype):
    """The fused backward recomputes the softmax per output pixel instead of accumulating with atomics:
    repeated runs are bit-identical."""
    features, logits = make_logits(2, 16, 24, 31, 5, 2, 2, dtype=dtype, device=device)
    grad = torch.randn(2, 16, 48, 62, dtype=dtype, device=device)
    assert_repeats_bit_for_bit(
        lambda: torch.ops.carafe.reassemble_normalized_backward(grad, features, logits, 5, 2, 2))


def test_carafepack_fused_and_unfused_agree():
    torch.manual_seed(0)
    fused = CARAFEPack(16, 2, up_group=2, compressed_channels=8)
    torch.nn.init.normal_(fused.content_encoder.weight, 0, 0.3)
    unfused = CARAFEPack(16, 2, up_group=2, compressed_channels=8, fused_normalizer=False)
    unfused.load_state_dict(fused.state_dict())
    x = torch.randn(2, 16, 9, 11)
    assert fused._fuse(x, None) and not unfused._fuse(x, None)
    assert not fused._fuse(x, (17, 21))  # other output sizes take the unfused path
    out_fused, out_unfused = fused(x), unfused(x)
    torch.testing.assert_close(out_fused, out_unfused, rtol=1e-5, atol=1e-6)
    grads_fused = torch.autograd.grad(out_fused.square().sum(), list(fused.parameters()))
    grads_unfused = torch.autograd.grad(out_unfused.square().sum(), list(unfused.parameters()))
    for a, b in zip(grads_fused, grads_unfused):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # sums over thousands of float32 products
    with FlopCounterMode(display=False) as counter:
        fused(x)
    assert torch.ops.carafe.reassemble_normalized in counter.get_flop_counts()["Global"]


def test_normalize_kernels_is_pixel_shuffle_then_softmax():
    logits = torch.randn(1, 2 * 9 * 4, 3, 4)
    masks = normalize_kernels(logits, 3, 2, 2)
    assert masks.shape == (1, 18, 6, 8)
    torch.testing.assert_close(masks.view(1, 2, 9, 6, 8).sum(2), torch.ones(1, 2, 6, 8))
    # output pixel (2h + i, 2w + j), group g, tap t comes from logit channel (g*9 + t)*4 + 2i + j at (h, w)
    g, t, h, w, i, j = 1, 4, 2, 3, 1, 0
    column = logits[0, [(g * 9 + u) * 4 + 2 * i + j for u in range(9)], h, w]
    torch.testing.assert_close(masks[0, g * 9 + t, 2 * h + i, 2 * w + j], column.softmax(0)[t])


@pytest.mark.parametrize("device", DEVICES)
def test_pack_fuses_by_default(device):
    """CARAFEPack takes the fused path on every backend by default, with the unfused path's results."""
    torch.manual_seed(0)
    features = torch.randn(2, 8, 5, 6, device=device)
    fused = CARAFEPack(8, 2, compressed_channels=4).to(device)
    unfused = CARAFEPack(8, 2, compressed_channels=4, fused_normalizer=False).to(device)
    unfused.load_state_dict(fused.state_dict())
    assert fused._fuse(features, None) and not unfused._fuse(features, None)
    x1 = features.clone().requires_grad_()
    x2 = features.clone().requires_grad_()
    y1, y2 = fused(x1), unfused(x2)
    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-5)
    y1.square().sum().backward()
    y2.square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-5)
    for p1, p2 in zip(fused.parameters(), unfused.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "mutate, error, words",
    [
        (lambda x, l: (x, l[:, :-1]), ValueError, r"logits must have shape"),
        (lambda x, l: (x, l[:, :, :-1]), ValueError, r"logits must have shape"),
        (lambda x, l: (x, l.double()), TypeError, "same dtype"),
        (lambda x, l: (x, [0.0]), TypeError, "logits must be a torch.Tensor"),
    ],
)
def test_bad_logits(mutate, error, words):
    features, logits = make_logits(1, 4, 3, 4, 3, 1, 2)
    with pytest.raises(error, match=words):
        carafe_normalized(*mutate(features, logits), 3, 1, 2)


def test_fused_is_exported():
    assert carafe_ops.carafe_normalized is carafe_normalized
