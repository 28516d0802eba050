"""The device check's parsing and reporting (ci/device_check.py), on the outputs of the real commands it runs.
The check itself runs in CI in its no-GPU mode (.ci/run); its GPU half only on a lent GPU."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

CI = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("device_check", CI / "device_check.py")
device_check = importlib.util.module_from_spec(spec)
sys.modules["device_check"] = device_check
spec.loader.exec_module(device_check)


def test_pytest_counts_reads_pytest_summary_lines():
    run = "==== 12 failed, 1380 passed, 3 skipped, 2 warnings in 61.20s (0:01:01) ===="
    assert device_check.pytest_counts("lots of output\n" + run) == {
        "failed": 12, "passed": 1380, "skipped": 3, "warnings": 2, "seconds": 61.2}
    assert device_check.pytest_counts("1335/2762 tests collected (1427 deselected) in 3.41s")["collected"] == 1335
    assert device_check.pytest_counts("1 error in 0.5s")["error"] == 1
    assert device_check.pytest_counts("tests/test_a.py: 789\ntests/test_b.py: 7\n")["collected"] == 796
    assert device_check.format_counts({"passed": 3, "failed": 1, "seconds": 2.0}) == "3 passed, 1 failed in 2 s"


def test_bench_summary_finds_the_targets_in_the_bench_json(tmp_path):
    """The bench's own JSON, from its workloads named as the targets name them (at CPU-sized shapes here)."""
    from carafe_ops import bench

    workloads = [bench.Workload("mmcv-shape", 1, 8, 10, 12), bench.Workload("batch8-64", 2, 8, 8, 8)]
    data = bench.run(torch.device("cpu"), workloads, [torch.float32, torch.bfloat16], False, log=lambda *_: None)
    data["detector"] = [{"method": "nearest", "ms": 2.0, "peak_training_mb": 100.0},
                        {"method": "CARAFEPack", "ms": 2.2, "peak_training_mb": 105.0}]
    headline, details = device_check.bench_summary(json.loads(json.dumps(data)))
    names = [t["what"] for t in details["targets"]]
    assert "carafe forward float32 mmcv-shape: x floor" in names and "carafe backward float32 batch8-64: x floor" in names
    assert "carafe backward bfloat16 / float32 time, mmcv-shape" in names
    detector = {t["what"]: t for t in details["targets"]}["detector FPN forward, CARAFE / nearest"]
    assert detector["measured"] == pytest.approx(1.1) and detector["met"]
    assert headline.startswith(f"{sum(t['met'] for t in details['targets'])} of {len(names)} targets met")
    assert details["fused_normalizer_faster"].endswith("of 8")  # 2 workloads, 2 dtypes, forward and forward+backward
    plain, plain_details = device_check.bench_summary(data, with_targets=False)
    assert not plain_details["targets"] and "mmcv-shape carafe forward" in plain


def test_step_summary_reads_each_packages_json_layout():
    det = {"device": "x", "results": [{"model": "faster FPN nearest", "median_step_s": 0.25, "peak_memory_gib": 3.5}]}
    inpaint = [{"variant": "carafe", "step_ms_median": 120.0, "peak_memory_gib": None}]
    assert device_check.step_summary("det", det) == "det: faster FPN nearest 0.250 s 3.5 GiB"
    assert device_check.step_summary("inpaint", inpaint) == "inpaint: carafe 0.120 s"


def test_summary_markdown_shows_steps_targets_and_failures():
    summary = {"started": "2026-12-01T00:00:00+00:00", "elapsed_s": 100.0, "budget_s": 480, "mode": "gpu",
               "environment": {"gpu": "NVIDIA H200", "capability": "90", "sms": 132, "gpu_memory_gib": 139.8,
                               "python": "3.12.3", "torch": "2.11.0", "torch_cuda": "13.0"},
               "steps": [{"name": "bench", "status": "pass", "seconds": 50.0, "headline": "1 of 1 targets met",
                          "details": {"targets": [{"what": "a | b", "measured": 1.234, "target": 1.5, "met": True}]},
                          "tail": []},
                         {"name": "ctest", "status": "fail", "seconds": 3.0, "headline": "exit status 1",
                          "details": {}, "tail": ["FAIL N=1 C=3"]}]}
    text = device_check.render_markdown(summary)
    assert "NVIDIA H200 (sm_90, 132 SMs, 140 GiB)" in text
    assert "| ctest | fail | 3 s | exit status 1 |" in text
    assert "| a | b | 1.23 | 1.5 | yes |" in text and "FAIL N=1 C=3" in text


def test_usage_errors_are_one_line_and_exit_status_2(tmp_path, capsys):
    assert device_check.main([str(tmp_path / "out"), "--budget", "5"]) == 2
    assert device_check.main([str(tmp_path / "out"), "--python", "no-such-python"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("device_check: error: ") for line in err)


def test_a_missing_wheel_folder_is_a_note_not_an_error(tmp_path):
    """A GPU run is too scarce to lose over a folder left out of the call: the steps that need a missing
    package say which."""
    args = device_check.parse_args([str(tmp_path / "out"), "--wheels", str(tmp_path / "none"), "--work", "rel"])
    assert args.wheels is None and "not a folder" in args.notes[0]
    assert args.work.is_absolute() and args.outdir.is_absolute()
