"""The op as PyTorch sees it: opcheck, torch.compile without graph breaks, FLOP counting, autocast."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from carafe_ops import CARAFEPack, carafe, reference
from carafe_ops.testing import make_inputs
from conftest import DEVICES


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_opcheck(dtype, channels_last, device):
    features, masks = make_inputs(2, 4, 5, 6, 3, 2, 2, dtype=dtype, device=device, channels_last=channels_last)
    for requires_grad in (False, True):
        args = (features.clone().requires_grad_(requires_grad), masks.clone().requires_grad_(requires_grad), 3, 2, 2)
        torch.library.opcheck(torch.ops.carafe.reassemble.default, args)
    grad = torch.randn(2, 4, 10, 12, dtype=dtype, device=device)
    torch.library.opcheck(torch.ops.carafe.reassemble_backward.default, (grad, features, masks, 3, 2, 2))


class _TinyDecoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.up = CARAFEPack(16, scale_factor=2, up_kernel=5, compressed_channels=8)
        self.head = torch.nn.Conv2d(16, 2, 1)

    def forward(self, x):
        return self.head(self.up(torch.relu(self.stem(x))))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_fullgraph(device):
    torch.manual_seed(0)
    model = _TinyDecoder().to(device)
    torch.nn.init.normal_(model.up.content_encoder.weight, 0, 0.1)
    compiled = torch.compile(model, fullgraph=True)  # raises on any graph break
    x = torch.randn(2, 3, 9, 12, device=device)
    eager_out = model(x)
    compiled_out = compiled(x)
    torch.testing.assert_close(compiled_out, eager_out, rtol=1e-4, atol=1e-5)
    eager_grads = torch.autograd.grad(eager_out.square().sum(), list(model.parameters()))
    compiled_grads = torch.autograd.grad(compiled(x).square().sum(), list(model.parameters()))
    for a, b in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_flop_counter_counts_forward_and_backward():
    n, c, h, w, k, s = 2, 8, 5, 7, 5, 2
    features, masks = make_inputs(n, c, h, w, k, 1, s)
    features.requires_grad_(True)
    counter = FlopCounterMode(display=False)
    with counter:
        carafe(features, masks, k, 1, s).sum().backward()
    forward = 2 * n * c * (s * h) * (s * w) * k * k
    counts = counter.get_flop_counts()["Global"]
    assert counts[torch.ops.carafe.reassemble] == forward
    assert counts[torch.ops.carafe.reassemble_backward] == 2 * forward


def test_flop_count_of_carafepack_matches_the_paper():
    """The paper: CARAFE costs H*W*199K FLOPs for C=256, sigma=2 (k_enc 3, k_up 5, C_m 64): per input pixel,
    2 * (C*C_m + k_enc^2*C_m*sigma^2*k_up^2 + sigma^2*k_up^2*C) = 2 * 99,584 = 199,168."""
    h, w = 10, 12
    module = CARAFEPack(256, 2)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.randn(1, 256, h, w))
    assert counter.get_total_flops() == h * w * 2 * (256 * 64 + 9 * 64 * 4 * 25 + 4 * 25 * 256)
    assert round(counter.get_total_flops() / (h * w) / 1000) == 199


def test_autocast_cpu_bfloat16():
    torch.manual_seed(0)
    module = CARAFEPack(16, 2, compressed_channels=8)
    torch.nn.init.normal_(module.content_encoder.weight, 0, 0.1)
    x = torch.randn(2, 16, 6, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), module(x), rtol=0.05, atol=0.05)
    # mixed dtypes are cast for the op (the masks come out of an fp32 softmax under autocast)
    features, masks = make_inputs(1, 4, 5, 5, 3, 1, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = carafe(features.bfloat16(), masks, 3, 1, 2)
    assert out.dtype == torch.bfloat16


@pytest.mark.cuda
@pytest.mark.parametrize("device", [p for p in DEVICES if p != "cpu"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_autocast_cuda(device, dtype):
    torch.manual_seed(0)
    module = CARAFEPack(16, 2, compressed_channels=8).to(device)
    x = torch.randn(2, 16, 6, 7, device=device)
    with torch.autocast("cuda", dtype=dtype):
        out = module(x)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), module(x), rtol=0.05, atol=0.05)


def test_reference_is_differentiable_twice():
    """The reference doubles as a fallback for what the op does not do, such as double backward."""
    features, masks = make_inputs(1, 2, 3, 3, 3, 1, 2, dtype=torch.float64)
    features.requires_grad_(True)
    masks.requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda x, m: reference.carafe(x, m, 3, 1, 2), (features, masks))
