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


def compare_with_reference(fn, features, masks, k, g, s, grad_output=None) -> dict[str, tuple[float, float]]:
    """Runs fn(features, masks, k, g, s) forward and backward and returns, for the output and both gradients,
    (max error, allowed max error) against the float64 reference. All pass when error <= allowed.
    The output size is the masks' spatial size."""
    dtype = features.dtype
    size = tuple(masks.shape[2:])
    x = features.detach().clone().requires_grad_(True)
    m = masks.detach().clone().requires_grad_(True)
    out = fn(x, m, k, g, s)
    if grad_output is None:
        grad_output = torch.randn_like(out)
    got = (out, *torch.autograd.grad(out, (x, m), grad_output))
    x64 = features.detach().double().requires_grad_(True)
    m64 = masks.detach().double().requires_grad_(True)
    out64 = reference.carafe(x64, m64, k, g, s, size)
    exact = (out64, *torch.autograd.grad(out64, (x64, m64), grad_output.double()))
    names = ("output", "grad_features", "grad_masks")
    if dtype in TOLERANCE:
        tol = TOLERANCE[dtype]
        return {
            name: ((a.double() - b).abs().max().item(), tol * (1 + b.abs().max().item()))
            for name, a, b in zip(names, got, exact)
        }
    xl = features.detach().clone().requires_grad_(True)
    ml = masks.detach().clone().requires_grad_(True)
    outl = reference.carafe(xl, ml, k, g, s, size)
    lowp = (outl, *torch.autograd.grad(outl, (xl, ml), grad_output))
    return {name: low_precision_errors(a, b, c) for name, a, b, c in zip(names, got, exact, lowp)}
