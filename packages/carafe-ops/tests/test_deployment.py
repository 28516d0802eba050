"""Deployment: ONNX export with standard operators only (run in onnxruntime), torch.export round trips,
fvcore FLOP counts. The exporters and runtimes are test extras (ci/setup.sh installs them)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from carafe_ops import CARAFE, CARAFEPack, export, reassemble_flops
from carafe_ops.flops import fvcore_handles
from carafe_ops.testing import low_precision_errors, make_inputs

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


class Upsampler(nn.Module):
    """CARAFEPack without an output size (sigma*H x sigma*W): the graph takes the band-product path."""

    def __init__(self, channels, scale, group, fused):
        super().__init__()
        self.pack = CARAFEPack(channels, scale, up_group=group, compressed_channels=8, fused_normalizer=fused)
        nn.init.normal_(self.pack.content_encoder.weight, 0, 0.3)

    def forward(self, x):
        return self.pack(x)


def _export(model, inputs, path, dynamo, dynamic_shapes=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, inputs, str(path), dynamo=True, dynamic_shapes=dynamic_shapes)
        else:
            names = [f"input{i}" for i in range(len(inputs))]
            axes = {name: {2: "height", 3: "width"} for name in names} if dynamic_shapes else None
            torch.onnx.export(model, inputs, str(path), dynamo=False, opset_version=17, input_names=names,
                              dynamic_axes=axes)


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("case", [(1, 12, 7, 19, 5, 1, 2, None), (2, 8, 5, 13, 3, 2, 3, False), (1, 8, 4, 9, 7, 4, 1, None)],
                         ids=["k5-G1-s2-fused", "k3-G2-s3-unfused", "k7-G4-s1-fused"])
def test_exported_op_and_pack_match_pytorch(case, dtype, dynamo, tmp_path):
    """The band-product graph at odd widths (not whole blocks), groups, sigma 1..3, fused and unfused kernels,
    float32 and float16, against PyTorch's float64 result."""
    n, c, h, w, k, g, s, fused = case
    torch.manual_seed(0)
    features, masks = make_inputs(n, c, h, w, k, g, s, seed=2)
    op = CARAFE(k, g, s)
    model = Upsampler(c, s, g, fused).eval()
    for name, module, inputs in (("op", op, (features, masks)), ("pack", model, (features,))):
        path = tmp_path / f"{name}.onnx"
        module_low, inputs_low = module.to(dtype), [t.to(dtype) for t in inputs]
        _export(module_low, tuple(inputs_low), path, dynamo)
        _standard_ops_only(path)
        with torch.no_grad():
            exact = module.double()(*[t.double() for t in inputs])
            lowp = module_low.to(dtype)(*inputs_low)
        module.to(dtype)
        got = _run_onnx(path, inputs_low).double()
        # the flash-attention rule of carafe_ops.testing: at most twice PyTorch's own error in that dtype
        error, allowed = low_precision_errors(got, exact, lowp) if dtype == torch.float16 else (
            (got - exact).abs().max().item(), 1e-5 * (1 + exact.abs().max().item()))
        assert error <= allowed, f"{name}: max error {error:.3g} > {allowed:.3g}"


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_exported_pack_with_dynamic_sizes(dynamo, tmp_path):
    """One graph for every image size, odd ones and widths that are not whole blocks included."""
    model = Upsampler(16, 2, 2, None).eval()
    path = tmp_path / "dynamic.onnx"
    height, width = torch.export.Dim("height", min=2, max=256), torch.export.Dim("width", min=2, max=256)
    _export(model, (torch.randn(1, 16, 12, 16),), path, dynamo, {"x": {2: height, 3: width}})
    for shape in [(1, 16, 12, 16), (1, 16, 7, 19), (1, 16, 5, 33), (1, 16, 9, 8)]:
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(_run_onnx(path, (x,)), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("channels", [64, 256])
def test_exported_graph_holds_no_tensor_larger_than_the_output(channels, tmp_path):
    """No k^2-fold unfold: every value in the graph (shapes inferred for a fixed input) is at most as large as
    the output padded to whole blocks of columns (at C = 64 the masks are 25/64 of the output)."""
    model = Upsampler(channels, 2, 1, None).eval()
    path = tmp_path / "pack.onnx"
    x = torch.randn(1, channels, 20, 27)
    _export(model, (x,), path, dynamo=False)
    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    block = export.block_size(channels, 5, 1)
    output = channels * 40 * 2 * (27 + block - 1) // block * block
    sizes = {}
    for value in inferred.graph.value_info:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if dims and all(d > 0 for d in dims):
            sizes[value.name] = math.prod(dims)
    assert sizes and max(sizes.values()) <= output, max(sizes.items(), key=lambda kv: kv[1])


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
