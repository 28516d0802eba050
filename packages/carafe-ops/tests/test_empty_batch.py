"""An empty batch (N = 0) is valid input: Mask R-CNN's mask head gets one for an image without detections.
Every op, its fake kernel and CARAFEPack return empty outputs and gradients of the right shapes."""

from __future__ import annotations

import pytest
import torch

from carafe_ops import CARAFEPack, carafe, carafe_normalized, reference
from carafe_ops.testing import make_inputs
from conftest import DEVICES

K, G, S = 3, 2, 2


def empty_inputs(device, channels_last=False):
    features, masks = make_inputs(1, 4, 5, 6, K, G, S, device=device, channels_last=channels_last)
    return features[:0].requires_grad_(True), masks[:0].requires_grad_(True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
def test_carafe_forward_and_backward(device, channels_last):
    features, masks = empty_inputs(device, channels_last)
    out = carafe(features, masks, K, G, S)
    assert out.shape == (0, 4, 10, 12) and out.device == features.device
    out.sum().backward()
    assert features.grad.shape == features.shape and masks.grad.shape == masks.shape
    torch.testing.assert_close(out, reference.carafe(features, masks, K, G, S))


@pytest.mark.parametrize("device", DEVICES)
def test_carafe_explicit_size(device):
    features, masks = make_inputs(1, 4, 5, 6, K, G, S, device=device)
    out = carafe(features[:0], masks[:0, :, :9, :11], K, G, S, size=(9, 11))
    assert out.shape == (0, 4, 9, 11)


@pytest.mark.parametrize("device", DEVICES)
def test_fused_normalizer(device):
    features = torch.randn(0, 4, 5, 6, device=device, requires_grad=True)
    logits = torch.randn(0, S * S * G * K * K, 5, 6, device=device, requires_grad=True)
    out = carafe_normalized(features, logits, K, G, S)
    assert out.shape == (0, 4, 10, 12)
    out.sum().backward()
    assert features.grad.shape == features.shape and logits.grad.shape == logits.shape


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_carafepack_on_a_mask_head_without_detections(device, fused):
    module = CARAFEPack(256, 2, fused_normalizer=fused).to(device)
    x = torch.randn(0, 256, 14, 14, device=device, requires_grad=True)
    out = module(x)
    assert out.shape == (0, 256, 28, 28)
    out.sum().backward()
    assert x.grad.shape == x.shape
    assert all(p.grad is not None and not p.grad.any() for p in module.parameters())


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    """The real and fake kernels agree on empty inputs (torch.compile and torch.export see the fake ones)."""
    features, masks = empty_inputs(device)
    torch.library.opcheck(torch.ops.carafe.reassemble.default, (features, masks, K, G, S))
    grad = torch.randn(0, 4, 10, 12, device=device)
    torch.library.opcheck(torch.ops.carafe.reassemble_backward.default,
                          (grad, features.detach(), masks.detach(), K, G, S))
    logits = torch.randn(0, S * S * G * K * K, 5, 6, device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.carafe.reassemble_normalized.default, (features, logits, K, G, S))
    torch.library.opcheck(torch.ops.carafe.reassemble_normalized_backward.default,
                          (grad, features.detach(), logits.detach(), K, G, S))
