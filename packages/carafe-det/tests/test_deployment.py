"""The detectors deploy: exported to ONNX (standard operators only, CARAFE in the neck and the mask head
included), run by onnxruntime, with PyTorch's detections."""

from __future__ import annotations

import warnings

import pytest
import torch

from carafe_det.configs import resolve_config_path
from carafe_det.torchvision_engine import build_model, load_torchvision_config

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("mask_on", [False, True], ids=["faster", "mask"])
@pytest.mark.parametrize("name", ["tiny_shapes_mask_rcnn_carafe", "tiny_shapes_mask_rcnn"])
def test_detector_exports_to_onnx_and_matches_pytorch(name, mask_on, tmp_path):
    torch.manual_seed(0)
    cfg = load_torchvision_config(resolve_config_path(f"torchvision/{name}.yaml"),
                                  ["INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "128", "MODEL.MASK_ON",
                                   str(mask_on), "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.01"])
    model = build_model(cfg).eval()
    image = torch.rand(3, 96, 128)
    with torch.no_grad():
        (expected,) = model([image])
    outputs = ["boxes", "labels", "scores"] + (["masks"] if mask_on else [])
    path = tmp_path / "detector.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, ([image],), str(path), dynamo=False, opset_version=17, input_names=["image"],
                          output_names=outputs)
    graph = onnx.load(str(path)).graph
    assert {node.domain for node in graph.node} <= {"", "ai.onnx"}
    options = ort.SessionOptions()
    options.log_severity_level = 3  # torchvision's mask pasting loop warns about its own output shapes
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = dict(zip(outputs, session.run(None, {"image": image.numpy()})))
    assert len(expected["boxes"]) > 0
    torch.testing.assert_close(torch.from_numpy(got["boxes"]), expected["boxes"], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(torch.from_numpy(got["scores"]), expected["scores"], rtol=1e-3, atol=1e-4)
    assert torch.equal(torch.from_numpy(got["labels"]), expected["labels"])
    if mask_on:
        torch.testing.assert_close(torch.from_numpy(got["masks"]), expected["masks"], rtol=1e-3, atol=1e-3)
