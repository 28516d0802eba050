"""The benchmark command runs and writes its JSON; its unfold baseline computes the same op."""

from __future__ import annotations

import json

import pytest

import torch

from carafe_ops import bench, reference
from carafe_ops.testing import make_inputs


def test_unfold_baseline_equals_reference():
    features, masks = make_inputs(2, 8, 5, 7, 5, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(bench.unfold_carafe(features, masks, 5, 2, 3), reference.carafe(features, masks, 5, 2, 3))


def test_bench_command_writes_results(tmp_path, capsys):
    out = tmp_path / "bench.json"
    result = bench.main(["--device", "cpu", "--suite", "quick", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["copy_bandwidth_gbs"] > 0 and saved["results"] == result["results"]
    methods = {(r["method"], r["pass"]) for r in saved["results"]}
    assert {("carafe", "forward"), ("carafe", "backward"), ("unfold", "forward+backward"), ("nearest", "forward"),
            ("CARAFEPack", "forward+backward"), ("unfused-pack", "forward+backward"), ("deconv-s2", "forward")} <= methods
    assert all(r["ms"] > 0 and r["ratio_to_floor"] > 0 for r in saved["results"])
    assert saved["matmul_gflops"]["float32"] > 0
    op = {(r["method"], r["pass"]): r for r in saved["results"]}
    forward = op[("carafe", "forward")]
    assert forward["flops"] == 2 * 2 * 64 * 50 * 68 * 25  # the quick workload: N 2, C 64, 25x34 -> 50x68, k_up 5
    assert op[("carafe", "backward")]["flops"] == 2 * forward["flops"] and forward["ratio_to_compute_floor"] > 0
    assert op[("CARAFEPack", "forward")]["flops"] > forward["flops"]  # the convolutions are counted too
    assert op[("nearest", "forward")]["ratio_to_compute_floor"] is None
    out = capsys.readouterr().out
    assert "x memory" in out and "x compute" in out


def test_detector_fpn_case_runs():
    """The end-to-end FPN case (small images here): both FPNs run on the same backbone features."""
    pytest.importorskip("torchvision")
    rows = bench.detector_fpn(torch.device("cpu"), image_size=(128, 160), batch=1, log=lambda *_: None)
    assert [r["method"] for r in rows] == ["nearest", "CARAFEPack"] and all(r["ms"] > 0 for r in rows)


def test_onnxruntime_rows_and_detector_case():
    """The deployment half: the exported op and CARAFEPack in onnxruntime beside the native times, and the whole
    detector exported (small images here)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torchvision")
    from carafe_ops import bench_onnx

    workloads = [bench.Workload("tiny", 1, 16, 6, 7)]
    native = bench.run(torch.device("cpu"), workloads, [torch.float32], False, log=lambda *_: None)["results"]
    rows = bench_onnx.onnxruntime_rows(workloads, native, bench.measure_ms, log=lambda *_: None)
    assert [r["method"] for r in rows] == ["onnxruntime carafe", "onnxruntime CARAFEPack"]
    assert all(r["ratio_to_native"] > 0 and r["max_error"] < 1e-4 for r in rows)
    detector = bench_onnx.detector_onnx((96, 128), bench.measure_ms, log=lambda *_: None)
    assert [r["method"] for r in detector] == ["onnxruntime nearest", "onnxruntime CARAFEPack"]
    assert all(r["matches_pytorch"] and r["ms"] > 0 for r in detector)
