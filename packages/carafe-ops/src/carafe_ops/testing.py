"""Helpers to check a CARAFE implementation against the float64 reference, shared by the test suite and the
demo (and usable by anyone porting a kernel).

Accuracy rule: float64 and float32 results must match the float64 reference to 1e-12 / 1e-5. A low-precision
result (float16, bfloat16) follows the rule of flash-attention's tests: its max error against the float64
result may be at most twice the max error of the same computation done by PyTorch in that precision (the
reference run in the low dtype), plus one unit of float32 rounding at the result's scale.
"""

from __future__ import annotations

import torch

from . import reference

TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5}


def make_inputs(n, c, h, w, k, g, s, *, dtype=torch.float32, device="cpu", channels_last=False, seed=None):
    """Fresh random features (N, C, H, W) and masks (N, G*k*k, s*H, s*W), standard normal, unnormalized."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    features = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    masks = torch.randn(n, g * k * k, s * h, s * w, generator=gen, dtype=torch.float64)
    features, masks = features.to(device=device, dtype=dtype), masks.to(device=device, dtype=dtype)
    if channels_last:
        features = features.contiguous(memory_format=torch.channels_last)
        masks = masks.contiguous(memory_format=torch.channels_last)
    return features, masks


def low_precision_errors(result, exact, lowp_reference) -> tuple[float, float]:
    """(our max error, allowed max error) of a low-precision result under the flash-attention rule."""
    exact = exact.double()
    ours = (result.double() - exact).abs().max().item()
    torch_error = (lowp_reference.double() - exact).abs().max().item()
    return ours, 2 * torch_error + 2**-24 * exact.abs().max().item()


def _compare(run, run_reference, inputs, names, grad_output=None) -> dict[str, tuple[float, float]]:
    """(max error, allowed max error) of run's output and input gradients against run_reference in float64, and,
    for float16/bfloat16, against run_reference in that dtype (the flash-attention rule above)."""
    dtype = inputs[0].dtype

    def forward_backward(fn, tensors, grad):
        leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
        out = fn(*leaves)
        return (out, *torch.autograd.grad(out, leaves, grad))

    if grad_output is None:
        grad_output = torch.randn_like(run(*[t.detach() for t in inputs]))
    got = forward_backward(run, inputs, grad_output)
    exact = forward_backward(run_reference, [t.double() for t in inputs], grad_output.double())
    if dtype in TOLERANCE:
        tol = TOLERANCE[dtype]
        return {name: ((a.double() - b).abs().max().item(), tol * (1 + b.abs().max().item()))
                for name, a, b in zip(names, got, exact)}
    lowp = forward_backward(run_reference, inputs, grad_output)
    return {name: low_precision_errors(a, b, c) for name, a, b, c in zip(names, got, exact, lowp)}


def compare_with_reference(fn, features, masks, k, g, s, grad_output=None) -> dict[str, tuple[float, float]]:
    """Runs fn(features, masks, k, g, s) forward and backward and returns, for the output and both gradients,
    (max error, allowed max error) against the float64 reference. All pass when error <= allowed.
    The output size is the masks' spatial size."""
    size = tuple(masks.shape[2:])
    return _compare(lambda x, m: fn(x, m, k, g, s), lambda x, m: reference.carafe(x, m, k, g, s, size),
                    (features, masks), ("output", "grad_features", "grad_masks"), grad_output)


def compare_normalized_with_reference(fn, features, logits, k, g, s, grad_output=None):
    """As compare_with_reference, for the fused kernel normalizer fn(features, logits, k, g, s): the reference is
    the unfused computation, pixel shuffle + softmax (normalize_kernels) and then the reference op."""
    from .functional import normalize_kernels

    return _compare(lambda x, l: fn(x, l, k, g, s),
                    lambda x, l: reference.carafe(x, normalize_kernels(l, k, g, s), k, g, s),
                    (features, logits), ("output", "grad_features", "grad_logits"), grad_output)
