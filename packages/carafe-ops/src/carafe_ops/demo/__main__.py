"""python -m carafe_ops.demo: checks the op against the reference on every backend and dtype, benchmarks it,
trains tiny segmentation models that differ only in their decoder's upsamplers (nearest, bilinear,
deconvolution, CARAFE), and writes their metrics side by side and figures.

Outputs (in --output): metrics.json, summary.md, benchmark.json and the PNGs segmentation_examples,
reassembly_kernels, training_curves and benchmark.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from .. import bench, build_info, carafe, has_cuda
from ..nn import UPSAMPLERS
from ..testing import compare_with_reference, make_inputs
from . import figures
from .scenes import make_scenes
from .segmentation_task import evaluate, train


def check_backends(log) -> list[dict]:
    """Op vs float64 reference on fresh random inputs, every backend and dtype."""
    devices = ["cpu"] + (["cuda"] if has_cuda() and torch.cuda.is_available() else [])
    rows = []
    log(f"{'device':<7}{'dtype':<10}{'output err':>12}{'grad_x err':>12}{'grad_m err':>12}  verdict")
    for device in devices:
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            features, masks = make_inputs(2, 16, 11, 13, 5, 2, 2, dtype=dtype, device=device)
            errors = compare_with_reference(carafe, features, masks, 5, 2, 2)
            ok = all(err <= allowed for err, allowed in errors.values())
            rows.append({"device": device, "dtype": str(dtype).removeprefix("torch."), "ok": ok,
                         **{name: err for name, (err, _) in errors.items()}})
            errs = "".join(f"{err:12.2e}" for err, _ in errors.values())
            log(f"{device:<7}{rows[-1]['dtype']:<10}{errs}  {'ok' if ok else 'FAIL'}")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m carafe_ops.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("demo_output/carafe-ops"))
    parser.add_argument("--steps", type=int, default=400, help="training steps per toy model")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log = print

    log(f"carafe-ops {build_info()['version']}, backends {build_info()['backends']}, torch {torch.__version__}")
    log("\n[1/4] op vs float64 reference (fresh random inputs, forward and both gradients)")
    checks = check_backends(log)

    log("\n[2/4] benchmark")
    device = torch.device("cuda" if torch.cuda.is_available() and has_cuda() else "cpu")
    bench_result = bench.run(device, bench.SUITES["quick"], [torch.float32], with_reference=True, log=log)
    (out / "benchmark.json").write_text(json.dumps(bench_result, indent=2))

    log(f"\n[3/4] toy segmentation of synthetic scenes: {len(UPSAMPLERS)} models x {args.steps} steps")
    train_images, train_labels = make_scenes(1024, seed=args.seed)
    val_images, val_labels = make_scenes(128, seed=args.seed + 1)
    models, losses, metrics = {}, {}, {}
    for kind in UPSAMPLERS:
        model, loss = train(kind, train_images, train_labels, args.steps, args.batch, args.seed, log)
        models[kind], losses[kind] = model, loss
        metrics[kind] = {**evaluate(model, val_images, val_labels),
                         "parameters": sum(p.numel() for p in model.parameters())}
    log(f"\n{'upsampler':<10}{'val mIoU':>10}{'pixel acc':>11}{'parameters':>12}")
    for kind, m in metrics.items():
        log(f"{kind:<10}{m['mIoU']:10.2f}{m['pixel_accuracy']:11.2f}{m['parameters']:12d}")

    log("\n[4/4] figures")
    figures.segmentation_examples(models, val_images[:4], val_labels[:4], out / "segmentation_examples.png")
    figures.reassembly_kernels(models["carafe"], val_images[0], val_labels[0], out / "reassembly_kernels.png")
    figures.training_curves(losses, out / "training_curves.png")
    figures.benchmark_bars(bench_result, out / "benchmark.png")

    summary = {
        "build": build_info(),
        "torch": torch.__version__,
        "checks": checks,
        "toy_segmentation": {"steps": args.steps, "batch": args.batch, "models": metrics},
        "benchmark": {"device": bench_result["device"], "file": "benchmark.json"},
        "seconds": time.perf_counter() - started,
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    lines = ["# carafe-ops demo", "", "## Op vs float64 reference", "",
             "| device | dtype | output | grad_features | grad_masks | verdict |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['device']} | {r['dtype']} | {r['output']:.2e} | {r['grad_features']:.2e} | {r['grad_masks']:.2e} "
              f"| {'ok' if r['ok'] else 'FAIL'} |" for r in checks]
    lines += ["", f"## Toy segmentation ({args.steps} steps, batch {args.batch}; validation set of 128 scenes)", "",
              "| upsampler | mIoU (%) | pixel accuracy (%) | parameters |", "|---|---|---|---|"]
    lines += [f"| {k} | {m['mIoU']:.2f} | {m['pixel_accuracy']:.2f} | {m['parameters']} |" for k, m in metrics.items()]
    lines += ["", f"## Benchmark ({bench_result['device']})", "", "| method | pass | ms | x floor |", "|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['pass']} | {r['ms']:.3f} | {r['ratio_to_floor']:.1f} |" for r in bench_result["results"]]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    log(f"\nwrote {out}/: metrics.json, summary.md, benchmark.json, segmentation_examples.png, "
        f"reassembly_kernels.png, training_curves.png, benchmark.png ({time.perf_counter() - started:.0f}s)")
    return 0 if all(r["ok"] for r in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
