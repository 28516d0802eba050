"""CARAFE and CARAFEPack keep mmcv.ops' names, arguments, parameters and init, so checkpoints move over."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from carafe_ops import CARAFE, CARAFEPack, carafe, reference
from carafe_ops.testing import make_inputs
from conftest import DEVICES


def test_carafepack_parameters_and_init_follow_mmcv():
    torch.manual_seed(0)
    module = CARAFEPack(256, 2)
    shapes = {name: tuple(p.shape) for name, p in module.state_dict().items()}
    assert shapes == {
        "channel_compressor.weight": (64, 256, 1, 1),
        "channel_compressor.bias": (64,),
        "content_encoder.weight": (100, 64, 3, 3),
        "content_encoder.bias": (100,),
    }
    # xavier-uniform on the compressor: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
    bound = (6 / (256 + 64)) ** 0.5
    weight = module.channel_compressor.weight
    assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound
    assert abs(module.content_encoder.weight.std().item() - 0.001) < 1e-4
    assert not module.channel_compressor.bias.any() and not module.content_encoder.bias.any()
    assert (module.up_kernel, module.up_group, module.scale_factor, module.compressed_channels) == (5, 1, 2, 64)


def test_carafepack_argument_order_and_defaults():
    module = CARAFEPack(32, 4, 3, 2, 5, 2, 16)
    assert (module.channels, module.scale_factor, module.up_kernel, module.up_group) == (32, 4, 3, 2)
    assert (module.encoder_kernel, module.encoder_dilation, module.compressed_channels) == (5, 2, 16)
    assert module.content_encoder.out_channels == 3 * 3 * 2 * 4 * 4
    assert module.content_encoder.padding == (4, 4) and module.content_encoder.dilation == (2, 2)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("up_group, scale_factor", [(1, 2), (2, 2), (4, 3)])
def test_carafepack_equals_its_definition(up_group, scale_factor, device):
    """compressor -> encoder -> pixel shuffle -> per-group softmax over taps -> reassembly, by hand."""
    torch.manual_seed(1)
    module = CARAFEPack(8, scale_factor, up_kernel=3, up_group=up_group, compressed_channels=6).to(device)
    torch.nn.init.normal_(module.content_encoder.weight, 0, 0.5)
    x = torch.randn(2, 8, 5, 6, device=device)
    logits = F.pixel_shuffle(module.content_encoder(module.channel_compressor(x)), scale_factor)
    n, _, h, w = logits.shape
    masks = logits.view(n, up_group, 9, h, w).softmax(dim=2).view(n, up_group * 9, h, w)
    expected = reference.carafe(x, masks, 3, up_group, scale_factor)
    torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-5)
    assert torch.allclose(module.kernel_normalizer(module.content_encoder(module.channel_compressor(x)))
                          .view(n, up_group, 9, h, w).sum(2), torch.ones(n, up_group, h, w, device=device))


def test_state_dict_round_trip_and_carafe_module():
    source = CARAFEPack(16, 2, compressed_channels=8)
    target = CARAFEPack(16, 2, compressed_channels=8)
    target.load_state_dict(source.state_dict())
    x = torch.randn(1, 16, 4, 4)
    assert torch.equal(source(x), target(x))
    features, masks = make_inputs(1, 4, 3, 3, 5, 2, 2)
    assert torch.equal(CARAFE(5, 2, 2)(features, masks), carafe(features, masks, 5, 2, 2))
    assert "kernel_size=5" in repr(CARAFE(5, 2, 2))


def test_uniform_masks_average_the_neighbourhood():
    """A known value: with all k_up^2 weights equal to 1/k_up^2, each output is the window mean (zero-padded)."""
    features = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    masks = torch.full((1, 9, 3, 3), 1 / 9)
    out = carafe(features, masks, 3, 1, 1)
    assert out[0, 0, 1, 1].item() == pytest.approx(5.0)  # mean of 1..9
    assert out[0, 0, 0, 0].item() == pytest.approx((1 + 2 + 4 + 5) / 9)
    # a one-hot mask on the centre tap is nearest-neighbour upsampling
    centre = torch.zeros(1, 9, 6, 6)
    centre[:, 4] = 1
    torch.testing.assert_close(carafe(features, centre, 3, 1, 2), F.interpolate(features, scale_factor=2))
