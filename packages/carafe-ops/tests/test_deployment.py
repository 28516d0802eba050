"""Deployment: ONNX export with standard operators only (run in onnxruntime), torch.export round trips,
fvcore FLOP counts. The exporters and runtimes are test extras (ci/setup.sh installs them)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from carafe_ops import CARAFE, CARAFEPack, reassemble_flops
from carafe_ops.flops import fvcore_handles
from carafe_ops.testing import make_inputs

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


class TinyFPN(nn.Module):
    """Two top-down steps with CARAFEPack upsampling to the lateral's size (odd sizes included)."""

    def __init__(self, channels=16):
        super().__init__()
        self.down1 = nn.Conv2d(3, channels, 3, stride=2, padding=1)
        self.down2 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.down3 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.up = nn.ModuleList(CARAFEPack(channels, 2, compressed_channels=8) for _ in range(2))
        for up in self.up:
            nn.init.normal_(up.content_encoder.weight, 0, 0.2)

    def forward(self, image):
        c1 = self.down1(image)
        c2 = self.down2(c1)
        p = self.down3(c2)
        p = self.up[0](p, size=c2.shape[-2:]) + c2
        return self.up[1](p, size=c1.shape[-2:]) + c1


class OpOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.op = CARAFE(5, 2, 2)

    def forward(self, features, masks):
        return self.op(features, masks)


def _models():
    torch.manual_seed(0)
    pack = CARAFEPack(16, 2, compressed_channels=8)
    nn.init.normal_(pack.content_encoder.weight, 0, 0.2)
    features, masks = make_inputs(1, 8, 9, 11, 5, 2, 2, seed=1)
    return {
        "CARAFE": (OpOnly(), (features, masks)),
        "CARAFEPack": (pack, (torch.randn(1, 16, 9, 11),)),
        "TinyFPN-odd-sizes": (TinyFPN(), (torch.randn(1, 3, 75, 99),)),
    }


MODELS = list(_models())


def _run_onnx(path, inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {arg.name: value.numpy() for arg, value in zip(session.get_inputs(), inputs)}
    return torch.from_numpy(session.run(None, feeds)[0])


def _standard_ops_only(path):
    graph = onnx.load(str(path)).graph
    domains = {node.domain for node in graph.node}
    assert domains <= {"", "ai.onnx"}, f"custom operator domains in the graph: {domains}"
    assert not any(node.op_type.lower().startswith("carafe") for node in graph.node)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_onnx_export_runs_in_onnxruntime(name, dynamo, tmp_path):
    model, inputs = _models()[name]
    model.eval()
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, inputs, str(path), dynamo=dynamo, opset_version=18 if dynamo else 17)
    _standard_ops_only(path)
    with torch.no_grad():
        expected = model(*inputs)
    torch.testing.assert_close(_run_onnx(path, inputs), expected, rtol=1e-4, atol=1e-5)


def test_onnx_export_with_dynamic_sizes(tmp_path):
    model = TinyFPN().eval()
    image = torch.randn(1, 3, 64, 96)
    height, width = torch.export.Dim("height", min=17, max=512), torch.export.Dim("width", min=17, max=512)
    path = tmp_path / "fpn_dynamic.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (image,), str(path), dynamo=True,
                          dynamic_shapes={"image": {2: height, 3: width}})
    _standard_ops_only(path)
    for shape in [(1, 3, 64, 96), (1, 3, 75, 99), (1, 3, 33, 50)]:
        other = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(_run_onnx(path, (other,)), model(other), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_torch_export_round_trip(name, tmp_path):
    """The exported program keeps the op (torch.ops.carafe.reassemble), survives save/load and matches eager."""
    model, inputs = _models()[name]
    model.eval()
    program = torch.export.export(model, inputs)
    assert any("carafe.reassemble" in str(node.target) for node in program.graph.nodes)
    path = tmp_path / "program.pt2"
    torch.export.save(program, path)
    loaded = torch.export.load(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module()(*inputs), model(*inputs))


def test_torch_export_dynamic_shapes():
    model = TinyFPN().eval()
    height, width = torch.export.Dim("height", min=17, max=512), torch.export.Dim("width", min=17, max=512)
    program = torch.export.export(model, (torch.randn(1, 3, 64, 96),), dynamic_shapes={"image": {2: height, 3: width}})
    for shape in [(1, 3, 75, 99), (1, 3, 40, 41)]:
        image = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(program.module()(image), model(image))


def test_fvcore_counts_the_op():
    fvcore = pytest.importorskip("fvcore.nn")
    n, c, h, w, k, s = 2, 8, 5, 7, 5, 2
    features, masks = make_inputs(n, c, h, w, k, 2, s)
    analysis = fvcore.FlopCountAnalysis(OpOnly(), (features, masks)).set_op_handle(**fvcore_handles())
    analysis.unsupported_ops_warnings(False)
    assert analysis.total() == n * c * (s * h) * (s * w) * k * k  # fvcore counts multiply-adds
    assert 2 * analysis.total() == reassemble_flops(features.shape, masks.shape, k)


def test_fvcore_carafepack_matches_the_paper():
    fvcore = pytest.importorskip("fvcore.nn")
    h, w = 10, 12
    analysis = fvcore.FlopCountAnalysis(CARAFEPack(256, 2), (torch.randn(1, 256, h, w),))
    analysis.set_op_handle(**fvcore_handles()).unsupported_ops_warnings(False)
    # multiply-adds per input pixel: C*C_m + k_enc^2*C_m*sigma^2*k_up^2 + sigma^2*k_up^2*C; the paper's 199K is 2x
    assert analysis.total() == h * w * (256 * 64 + 9 * 64 * 4 * 25 + 4 * 25 * 256) == h * w * 99584
