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

from carafe_engine.benchmark import benchmark_device, report_step_results, step_benchmark_parser

from ..engine import benchmark_config

DEFAULT_CONFIGS = ["upernet_r50_ade20k.yaml", "upernet_r50_ade20k_carafe.yaml"]


def main(argv=None) -> int:
    parser = step_benchmark_parser("carafe-seg-step-benchmark", __doc__, DEFAULT_CONFIGS, (600, 800))
    args = parser.parse_args(argv)
    device, name = benchmark_device(args.device)
    results = [benchmark_config(c, device, args.batch, tuple(args.size), args.warmup, args.steps) for c in args.configs]
    report_step_results(args, name, results, "upsamplers", {"params": "parameters", "decoder": "decoder_parameters"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
