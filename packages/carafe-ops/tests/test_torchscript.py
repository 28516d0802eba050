"""torch.jit.script compiles CARAFE, CARAFEPack, nn.Upsample's stand-in and a torchvision detector with CARAFE put
in by replace_upsampling; scripted results and gradients equal eager ones."""

from __future__ import annotations

import warnings

import pytest
import torch

from carafe_ops import CARAFE, CARAFEPack
from carafe_ops.testing import make_inputs
from conftest import DEVICES


def script(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated in recent PyTorch releases
        return torch.jit.script(module)


def assert_same_forward_and_backward(module, scripted, *inputs, size=None):
    args = [t.clone().requires_grad_(True) for t in inputs]
    script_args = [t.clone().requires_grad_(True) for t in inputs]
    out = module(*args, size=size) if size is not None else module(*args)
    script_out = scripted(*script_args, size) if size is not None else scripted(*script_args)
    torch.testing.assert_close(script_out, out, rtol=0, atol=0)
    grad = torch.randn_like(out)
    out.backward(grad)
    script_out.backward(grad)
    for a, b in zip(args, script_args):
        torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_carafe_module(device):
    module = CARAFE(5, 2, 2)
    features, masks = make_inputs(1, 8, 9, 11, 5, 2, 2, device=device)
    assert_same_forward_and_backward(module, script(module), features, masks)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fused", [None, False], ids=["default", "unfused"])
@pytest.mark.parametrize("size", [None, [17, 21], [18, 22]], ids=["sigma", "odd-size", "sigma-given"])
def test_carafepack(device, fused, size):
    torch.manual_seed(0)
    module = CARAFEPack(16, 2, up_group=2, compressed_channels=8, fused_normalizer=fused).to(device)
    torch.nn.init.normal_(module.content_encoder.weight, 0, 0.3)
    x = torch.randn(2, 16, 9, 11, device=device)
    assert_same_forward_and_backward(module, script(module), x, size=size)


def test_scripted_errors_name_the_problem():
    scripted = script(CARAFE(3, 1, 2))
    features, masks = make_inputs(1, 4, 5, 6, 3, 1, 2)
    with pytest.raises(Exception, match="masks must have spatial size"):
        scripted(features, masks[:, :, :-1])
    with pytest.raises(Exception, match="masks must have shape"):  # the op's own check, from the script
        scripted(features, masks[:, :-1])


def test_upsample_with_a_fixed_size():
    nn = pytest.importorskip("carafe_ops.nn")
    module = nn.Upsample(8, size=(13, 15))
    x = torch.randn(1, 8, 7, 8)
    assert_same_forward_and_backward(module, script(module), x)


def test_torchvision_detector_with_carafe():
    detection = pytest.importorskip("torchvision.models.detection")
    from carafe_ops.nn import replace_upsampling

    torch.manual_seed(0)
    model = detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=96, max_size=128)
    model = replace_upsampling(model).eval()
    images = [torch.rand(3, 96, 128), torch.rand(3, 80, 112)]
    with torch.no_grad():
        expected = model(images)
        _, scripted = script(model)(images)
    for a, b in zip(expected, scripted):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
