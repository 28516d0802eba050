"""Times one full training iteration (generator forward, discriminator step, generator step; the paper's networks
and optimizer) per variant, and its peak GPU memory: the "batch 32, 256x256 on one GPU" check.

    python -m carafe_inpaint.step_benchmark --output step_benchmark.json            # batch 32, 256x256, CUDA
    python -m carafe_inpaint.step_benchmark --device cpu --batch 2 --size 64        # a quick CPU run

Inputs are embedded photographs (resized views) with free-form masks, made once, so data loading is not timed.
Times are the median over --iters iterations after --warmup ones, with CUDA synchronized around each.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from carafe_engine import Sample, time_steps

from .config import get_config
from .data import TrainingViews, open_source
from .engine import InpaintingTrainer

VARIANTS = {"deconv": "places_deconv", "carafe": "places_carafe", "partialconv": "places_partialconv"}


def benchmark(variant: str, batch: int, size: int, device: str, warmup: int, iters: int, opts=()) -> dict:
    with tempfile.TemporaryDirectory() as scratch:  # the trainer's OUTPUT_DIR: nothing is written there
        cfg = get_config(VARIANTS[variant], ["MODEL.DEVICE", device, "DATASETS.IMAGE_SIZE", str(size),
                                             "SOLVER.IMS_PER_BATCH", str(batch), "OUTPUT_DIR", scratch, *opts])
        trainer = InpaintingTrainer(cfg)
    views = TrainingViews(open_source("embedded", split="train"), size, seed=0)
    samples = [views[Sample(i % len(views), i, 0)] for i in range(batch)]
    image = torch.stack([s["image"] for s in samples]).to(trainer.device)
    mask = torch.stack([s["mask"] for s in samples]).to(trainer.device)
    cuda = trainer.device.type == "cuda"
    trainer.iteration = 0
    models = trainer.models
    timing = time_steps(lambda i: trainer.step(models["generator"], models["discriminator"], image, mask, iteration=i),
                        trainer.device, warmup, iters)
    times = timing["step_times_s"]
    return {
        "variant": variant, "device": torch.cuda.get_device_name() if cuda else "cpu", "batch": batch, "size": size,
        "step_ms_median": 1000 * timing["median_step_s"], "step_ms_min": 1000 * min(times),
        "peak_memory_gib": timing["peak_memory_gib"],
        "generator_parameters": sum(p.numel() for p in models["generator"].parameters()),
        "discriminator_parameters": sum(p.numel() for p in models["discriminator"].parameters()),
        "losses": {k: float(v) for k, v in timing["last"].items()}, "torch": torch.__version__,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m carafe_inpaint.step_benchmark",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the results")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides (KEY VALUE)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "step_benchmark: error: no CUDA GPU (use --device cpu for a CPU run)\n")
    results = []
    print(f"{'variant':<12}{'step (ms)':>11}{'min (ms)':>10}{'peak mem (GiB)':>16}{'G params':>11}")
    for variant in args.variants:
        result = benchmark(variant, args.batch, args.size, args.device, args.warmup, args.iters, args.opts)
        results.append(result)
        memory = f"{result['peak_memory_gib']:.2f}" if result["peak_memory_gib"] is not None else "-"
        print(f"{variant:<12}{result['step_ms_median']:11.1f}{result['step_ms_min']:10.1f}{memory:>16}"
              f"{result['generator_parameters']:11d}", flush=True)
        if args.device == "cuda":
            torch.cuda.empty_cache()
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
