"""float64 gradcheck of both inputs, through the public function and through the module."""

from __future__ import annotations

import pytest
import torch

from carafe_ops import CARAFEPack, carafe
from carafe_ops.testing import make_inputs
from conftest import DEVICES

CASES = [  # (N, C, H, W, k_up, G, sigma)
    (1, 2, 3, 4, 1, 1, 1),
    (2, 4, 3, 3, 3, 2, 2),
    (1, 3, 4, 3, 5, 1, 2),
    (1, 4, 2, 3, 3, 4, 3),
    (1, 2, 3, 2, 7, 2, 4),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "N{}C{}H{}W{}-k{}G{}s{}".format(*c))
def test_gradcheck_both_inputs(case, channels_last, device):
    n, c, h, w, k, g, s = case
    features, masks = make_inputs(n, c, h, w, k, g, s, dtype=torch.float64, device=device, channels_last=channels_last)
    features.requires_grad_(True)
    masks.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, m: carafe(x, m, k, g, s), (features, masks))


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_carafepack(device):
    torch.manual_seed(0)
    module = CARAFEPack(channels=4, scale_factor=2, up_kernel=3, up_group=2, compressed_channels=3)
    module = module.double().to(device)
    # a larger encoder weight than the init's 0.001 so the softmax is far from uniform
    torch.nn.init.normal_(module.content_encoder.weight, 0, 0.3)
    x = torch.randn(1, 4, 3, 4, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,))
