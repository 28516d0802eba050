"""Shared fixtures: devices (CUDA ones skip where there is no GPU or no CUDA backend), random inputs, and the
accuracy rule for low precision."""

from __future__ import annotations

import pytest
import torch

import carafe_ops
from carafe_ops import reference

CUDA_OK = carafe_ops.has_cuda() and torch.cuda.is_available()
CUDA_SKIP_REASON = (
    "no CUDA GPU" if not torch.cuda.is_available() else "this carafe-ops build has no CUDA backend"
)

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not CUDA_OK, reason=CUDA_SKIP_REASON)]),
]

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def make_inputs(n, c, h, w, k, g, s, *, dtype=torch.float32, device="cpu", channels_last=False, seed=None):
    """Fresh random features and masks (masks unnormalized, both standard normal)."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    features = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    masks = torch.randn(n, g * k * k, s * h, s * w, generator=gen, dtype=torch.float64)
    features, masks = features.to(device=device, dtype=dtype), masks.to(device=device, dtype=dtype)
    if channels_last:
        features = features.contiguous(memory_format=torch.channels_last)
        masks = masks.contiguous(memory_format=torch.channels_last)
    return features, masks


def assert_low_precision_close(result, exact, lowp_reference, what="output"):
    """The rule of flash-attention's tests: a low-precision kernel's max error against the float64 result may be
    at most twice the max error of the same computation done by PyTorch in that precision (here the reference,
    which accumulates in the low precision), plus one unit of float32 rounding at the result's scale."""
    exact = exact.double()
    our_error = (result.double() - exact).abs().max().item()
    torch_error = (lowp_reference.double() - exact).abs().max().item()
    slack = 2**-24 * exact.abs().max().item()
    assert our_error <= 2 * torch_error + slack, (
        f"{what}: error {our_error:.3g} exceeds twice that of PyTorch in {result.dtype} ({torch_error:.3g})"
    )


def assert_matches_reference(op_out, features, masks, k, g, s):
    """Compares an op result computed from (features, masks) with the reference, by the rule for its dtype."""
    exact = reference.carafe(features.double(), masks.double(), k, g, s)
    if features.dtype in (torch.float32, torch.float64):
        tol = 1e-12 if features.dtype == torch.float64 else 1e-5
        torch.testing.assert_close(op_out.double(), exact, rtol=tol, atol=tol)
    else:
        assert_low_precision_close(op_out, exact, reference.carafe(features, masks, k, g, s))
