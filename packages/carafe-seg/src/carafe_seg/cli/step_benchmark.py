"""carafe-seg-step-benchmark: time and peak memory of training steps of the paper's models, baseline vs CARAFE.

    carafe-seg-step-benchmark --output step_benchmark.json                 # on a GPU: the paper's per-GPU load
    carafe-seg-step-benchmark --device cpu --size 96 128 --steps 2 CONFIG.yaml ...   (a smoke test)

Each config (default: the shipped upernet_r50_ade20k.yaml and upernet_r50_ade20k_carafe.yaml) is built with
random weights (no ImageNet file needed) and trained for --warmup + --steps steps on a random batch of
--batch images (default 2: what each of the paper's 8 GPUs holds) of --size H W (default 600 x 800: the largest
training shorter edge at ADE20K's usual 4:3, padded to 608 x 800), with the optimizer and the step of
carafe-seg-train (one process, so plain BatchNorm). Reports the median step time, the peak memory (CUDA: the
allocator's peak; CPU: not measured) and the parameter counts, and writes them as JSON.
"""

from __future__ import annotations

import torch
from carafe_engine.benchmark import benchmark_device, save_step_results, step_benchmark_parser, time_steps

from .config import load_seg_config
from .data.transforms import IGNORE_INDEX, pad_batch
from .model import build_model
from .predict import describe_upsamplers
from .train import parameter_groups, train_step

DEFAULT_CONFIGS = ["upernet_r50_ade20k.yaml", "upernet_r50_ade20k_carafe.yaml"]


def benchmark_config(config: str, device: torch.device, batch: int, size: tuple[int, int], warmup: int,
                     steps: int, seed: int = 0) -> dict:
    cfg = load_seg_config(config)
    torch.manual_seed(seed)
    model = build_model(cfg).to(device).train()
    optimizer = torch.optim.SGD(parameter_groups(model, cfg.SOLVER.WEIGHT_DECAY), lr=cfg.SOLVER.BASE_LR,
                                momentum=cfg.SOLVER.MOMENTUM)
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, *size, generator=gen)
    targets = torch.randint(IGNORE_INDEX, cfg.DATASET.NUM_CLASSES, (batch, *size), generator=gen)
    images, targets = pad_batch(list(images), list(targets), cfg.INPUT.SIZE_DIVISIBILITY)  # as the loader does
    images, targets = images.to(device), targets.to(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    timing = time_steps(lambda _: train_step(model, optimizer, images, targets, cfg.INPUT.LABEL_DOWNSAMPLE), device,
                        warmup, steps)
    decoder_params = sum(p.numel() for p in model.decoder.parameters())
    return {
        "config": config,
        "upsamplers": describe_upsamplers(cfg),
        "median_step_s": timing["median_step_s"],
        "step_times_s": timing["step_times_s"],
        "peak_memory_gib": timing["peak_memory_gib"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "decoder_parameters": decoder_params,
        "final_loss": timing["last"].item(),
    }


def main(argv=None) -> int:
    parser = step_benchmark_parser("carafe-seg-step-benchmark", __doc__, DEFAULT_CONFIGS, (600, 800))
    args = parser.parse_args(argv)
    device, name = benchmark_device(args.device)
    results = [benchmark_config(c, device, args.batch, tuple(args.size), args.warmup, args.steps) for c in args.configs]
    print(f"training step, batch {args.batch} x {args.size[0]}x{args.size[1]}, {name}, torch {torch.__version__}")
    print(f"{'upsamplers':<24}{'step (s)':>10}{'peak GiB':>10}{'params':>12}{'decoder':>12}")
    for r in results:
        memory = f"{r['peak_memory_gib']:.2f}" if r["peak_memory_gib"] is not None else "-"
        print(f"{r['upsamplers']:<24}{r['median_step_s']:10.3f}{memory:>10}{r['parameters']:12d}"
              f"{r['decoder_parameters']:12d}")
    save_step_results(args, name, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
