"""Shared fixtures: the devices to test (CUDA ones skip where there is no GPU or no CUDA backend) and dtypes."""

from __future__ import annotations

import pytest
import torch

import carafe_ops
import carafe_ops.testing

CUDA_OK = carafe_ops.has_cuda() and torch.cuda.is_available()
CUDA_SKIP_REASON = "no CUDA GPU" if not torch.cuda.is_available() else "this carafe-ops build has no CUDA backend"

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not CUDA_OK, reason=CUDA_SKIP_REASON)]),
]

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def assert_agrees_with_reference(fn, features, masks, k, g, s, grad_output=None):
    """Output and both gradients of fn within the accuracy rule of carafe_ops.testing."""
    for name, (error, allowed) in carafe_ops.testing.compare_with_reference(
        fn, features, masks, k, g, s, grad_output
    ).items():
        assert error <= allowed, f"{name} ({features.dtype}): max error {error:.3g} > allowed {allowed:.3g}"


def assert_repeats_bit_for_bit(fn, runs: int = 3):
    """fn() returns a tuple of tensors; every further call returns the same bits."""
    first = fn()
    for _ in range(runs):
        assert all(torch.equal(a, b) for a, b in zip(first, fn()))
