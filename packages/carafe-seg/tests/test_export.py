"""Deployment of the task model: the tiny UperNet with CARAFE in all three places exports to ONNX with standard
operators only, runs in onnxruntime, and torch.export keeps the CARAFE op."""

from __future__ import annotations

import warnings

import pytest
import torch

from carafe_seg.config import load_seg_config
from carafe_seg.modeling.segmentor import build_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model(load_seg_config("tiny_carafe.yaml")).eval()
    assert {kind for kind in load_seg_config("tiny_carafe.yaml").MODEL.UPSAMPLER.values()} == {"carafe"}
    return net


def test_onnx_export_runs_in_onnxruntime(model, tmp_path):
    images = torch.randn(1, 3, 75, 99)  # padded to 96 x 128 inside the model
    path = tmp_path / "upernet_carafe.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (images,), str(path), dynamo=True)
    domains = {node.domain for node in onnx.load(str(path)).graph.node}
    assert domains <= {"", "ai.onnx"}, domains
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), model(images), rtol=1e-4, atol=1e-4)


def test_torch_export_keeps_the_op(model):
    images = torch.randn(1, 3, 64, 96)
    program = torch.export.export(model, (images,))
    assert any("carafe.reassemble" in str(node.target) for node in program.graph.nodes)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(images), model(images))
