"""CUDA launches follow PyTorch's stream semantics: every kernel runs on the current stream (a side stream, a
CUDA graph capture), and an op on one GPU creates no context on another."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from carafe_ops import CARAFEPack, carafe, carafe_normalized, reference
from carafe_ops.testing import make_inputs
from conftest import CUDA_OK, CUDA_SKIP_REASON

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not CUDA_OK, reason=CUDA_SKIP_REASON)]

K, G, S = 5, 2, 2


def _all_ops(features, masks, logits, grad):
    """Forward and backward of both ops: six tensors."""
    out = carafe(features, masks, K, G, S)
    grads = torch.ops.carafe.reassemble_backward(grad, features, masks, K, G, S)
    out_normalized = carafe_normalized(features, logits, K, G, S)
    grads_normalized = torch.ops.carafe.reassemble_normalized_backward(grad, features, logits, K, G, S)
    return (out, *grads, out_normalized, *grads_normalized)


def _inputs(dtype=torch.float32):
    features, masks = make_inputs(2, 8, 40, 52, K, G, S, dtype=dtype, device="cuda")
    logits = torch.randn(2, S * S * G * K * K, 40, 52, dtype=dtype, device="cuda")
    grad = torch.randn(2, 8, 80, 104, dtype=dtype, device="cuda")
    return features, masks, logits, grad


def test_side_stream():
    """On a side stream whose inputs only become ready after a long sleep: an op launched on any other stream
    would read them too early (or be read back before it finished)."""
    inputs = _inputs()
    expected = _all_ops(*inputs)
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        torch.cuda._sleep(20_000_000)  # ~10 ms of this stream's time before its inputs exist
        late = [t * 1 for t in inputs]  # made on the side stream, behind the sleep
        results = _all_ops(*late)
        on_host = [r.cpu() for r in results]  # copied on the side stream too
    stream.synchronize()
    for got, want in zip(on_host, expected):
        assert torch.equal(got, want.cpu())


def test_side_stream_autograd_matches_reference():
    stream = torch.cuda.Stream()
    features, masks = make_inputs(1, 4, 30, 30, 3, 1, 2, device="cuda")
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        torch.cuda._sleep(20_000_000)
        x = (features * 1).requires_grad_(True)
        m = (masks * 1).requires_grad_(True)
        out = carafe(x, m, 3, 1, 2)
        out.square().sum().backward()
    torch.cuda.current_stream().wait_stream(stream)
    x64 = features.double().requires_grad_(True)
    m64 = masks.double().requires_grad_(True)
    ref = reference.carafe(x64, m64, 3, 1, 2)
    ref.square().sum().backward()
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(m.grad.double(), m64.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_cuda_graph_replay_equals_eager(dtype):
    static = _inputs(dtype)
    warmup = torch.cuda.Stream()  # as PyTorch's docs ask: run once on a side stream before capturing
    warmup.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(warmup):
        _all_ops(*static)
    torch.cuda.current_stream().wait_stream(warmup)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = _all_ops(*static)
    for _ in range(2):  # fresh inputs each replay
        fresh = _inputs(dtype)
        for target, value in zip(static, fresh):
            target.copy_(value)
        graph.replay()
        eager = _all_ops(*fresh)
        for got, want in zip(captured, eager):
            assert torch.equal(got, want)


def test_graphed_carafepack_training_step():
    """CARAFEPack forward and backward as one graphed callable (the fused normalizer's workspace included)."""
    torch.manual_seed(0)
    module = CARAFEPack(16, 2, compressed_channels=8).cuda()
    torch.nn.init.normal_(module.content_encoder.weight, 0, 0.3)
    eager = CARAFEPack(16, 2, compressed_channels=8).cuda()
    eager.load_state_dict(module.state_dict())
    example = torch.randn(2, 16, 20, 24, device="cuda", requires_grad=True)
    graphed = torch.cuda.make_graphed_callables(module, (example,))
    x = torch.randn(2, 16, 20, 24, device="cuda")
    x_graph, x_eager = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y_graph, y_eager = graphed(x_graph), eager(x_eager)
    y_graph.square().sum().backward()
    y_eager.square().sum().backward()
    torch.testing.assert_close(y_graph, y_eager, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x_graph.grad, x_eager.grad, rtol=1e-4, atol=1e-5)
    for a, b in zip(module.parameters(), eager.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_op_on_second_gpu_creates_no_context_on_the_first():
    """From a fresh thread (here, a fresh process), an op on cuda:1 runs there and leaves cuda:0 untouched."""
    script = textwrap.dedent(
        """
        import threading, torch
        from carafe_ops import carafe
        from carafe_ops.testing import make_inputs
        def run():
            features, masks = make_inputs(1, 4, 6, 6, 3, 1, 2, device="cuda:1")
            out = carafe(features, masks, 3, 1, 2)
            torch.cuda.synchronize("cuda:1")
            assert out.device == torch.device("cuda:1")
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        print("context on cuda:0:", torch._C._cuda_hasPrimaryContext(0))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ),
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "context on cuda:0: False" in result.stdout
