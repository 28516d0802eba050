"""The one-step benchmark (the GPU check at batch 32, 256x256) runs end to end, here on the CPU at a small size."""

from __future__ import annotations

import json

import pytest

from carafe_inpaint.cli.step_benchmark import main


def test_step_benchmark_writes_one_result_per_config(tmp_path, capsys):
    output = tmp_path / "step.json"
    assert main(["--device", "cpu", "--batch", "2", "--size", "32", "32", "--warmup", "0", "--steps", "1",
                 "places_deconv", "places_carafe", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    results = report["results"]
    assert [r["variant"] for r in results] == ["baseline", "CARAFE"]
    assert report["batch"] == 2 and report["size"] == [32, 32] and all(r["median_step_s"] > 0 for r in results)
    # the paper's networks: 6.07 M generator parameters with deconvolutions, 5.93 M with CARAFE
    assert [r["generator_parameters"] for r in results] == [6072131, 5925515]
    assert "CARAFE" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="2"):
        main(["--device", "cpu", "--size", "30", "32"])
    assert capsys.readouterr().err.startswith("carafe-inpaint-step-benchmark: error: --size: H and W must be positive "
                                              "multiples of 4, got 30 32")
