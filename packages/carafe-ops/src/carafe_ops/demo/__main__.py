"""python -m carafe_ops.demo: checks the op against the float64 reference on every backend and dtype and
benchmarks it next to nearest and bilinear interpolation and a deconvolution. (The upsamplers compared inside
trained models are the task packages' demos: bilinear in carafe-seg, nearest and deconvolution in carafe-det,
deconvolution in carafe-inpaint.)

Outputs (in --output): metrics.json, summary.md, benchmark.json and benchmark.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from .. import bench, build_info, carafe, has_cuda
from ..testing import compare_with_reference, make_inputs
from .figures import benchmark_bars


def check_backends() -> list[dict]:
    """Op vs float64 reference on fresh random inputs, every backend and dtype."""
    devices = ["cpu"] + (["cuda"] if has_cuda() and torch.cuda.is_available() else [])
    rows = []
    print(f"{'device':<7}{'dtype':<10}{'output err':>12}{'grad_x err':>12}{'grad_m err':>12}  verdict")
    for device in devices:
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            features, masks = make_inputs(2, 16, 11, 13, 5, 2, 2, dtype=dtype, device=device)
            errors = compare_with_reference(carafe, features, masks, 5, 2, 2)
            ok = all(err <= allowed for err, allowed in errors.values())
            rows.append({"device": device, "dtype": str(dtype).removeprefix("torch."), "ok": ok,
                         **{name: err for name, (err, _) in errors.items()}})
            errs = "".join(f"{err:12.2e}" for err, _ in errors.values())
            print(f"{device:<7}{rows[-1]['dtype']:<10}{errs}  {'ok' if ok else 'FAIL'}")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m carafe_ops.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("demo_output/carafe-ops"))
    args = parser.parse_args(argv)
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    print(f"carafe-ops {build_info()['version']}, backends {build_info()['backends']}, torch {torch.__version__}")
    print("\n[1/2] op vs float64 reference (fresh random inputs, forward and both gradients)")
    checks = check_backends()

    print("\n[2/2] benchmark")
    device = torch.device("cuda" if torch.cuda.is_available() and has_cuda() else "cpu")
    bench_result = bench.run(device, bench.SUITES["quick"], [torch.float32], with_reference=True)
    (out / "benchmark.json").write_text(json.dumps(bench_result, indent=2))

    benchmark_bars(bench_result, out / "benchmark.png")

    summary = {
        "build": build_info(),
        "torch": torch.__version__,
        "checks": checks,
        "benchmark": {"device": bench_result["device"], "file": "benchmark.json"},
        "seconds": time.perf_counter() - started,
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    lines = ["# carafe-ops demo", "", "## Op vs float64 reference", "",
             "| device | dtype | output | grad_features | grad_masks | verdict |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['device']} | {r['dtype']} | {r['output']:.2e} | {r['grad_features']:.2e} | {r['grad_masks']:.2e} "
              f"| {'ok' if r['ok'] else 'FAIL'} |" for r in checks]
    lines += ["", f"## Benchmark ({bench_result['device']})", "", "| method | pass | ms | x floor |", "|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['pass']} | {r['ms']:.3f} | {r['ratio_to_floor']:.1f} |" for r in bench_result["results"]]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"\nwrote {out}/: metrics.json, summary.md, benchmark.json, benchmark.png "
        f"({time.perf_counter() - started:.0f}s)")
    return 0 if all(r["ok"] for r in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
