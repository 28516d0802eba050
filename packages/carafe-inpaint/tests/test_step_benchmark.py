"""The one-step benchmark (the GPU check at batch 32, 256x256) runs end to end, here on the CPU at a small size."""

from __future__ import annotations

import json

from carafe_inpaint.step_benchmark import main


def test_step_benchmark_writes_one_result_per_variant(tmp_path, capsys):
    output = tmp_path / "step.json"
    assert main(["--device", "cpu", "--batch", "2", "--size", "32", "--warmup", "0", "--iters", "1",
                 "--variants", "deconv", "carafe", "--output", str(output)]) == 0
    results = json.loads(output.read_text())
    assert [r["variant"] for r in results] == ["deconv", "carafe"]
    assert all(r["batch"] == 2 and r["size"] == 32 and r["step_ms_median"] > 0 for r in results)
    # the paper's networks: 6.07 M generator parameters with deconvolutions, 5.93 M with CARAFE
    assert [r["generator_parameters"] for r in results] == [6072131, 5925515]
    assert "carafe" in capsys.readouterr().out
