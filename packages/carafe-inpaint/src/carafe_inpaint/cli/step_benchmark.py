"""carafe-inpaint-step-benchmark: time and peak memory of one training iteration of the paper's inpainting models
(the "batch 32, 256x256 on one GPU" check), baseline vs CARAFE vs Partial Conv.

    carafe-inpaint-step-benchmark --output step_benchmark.json                     # batch 32, 256x256, CUDA
    carafe-inpaint-step-benchmark --device cpu --batch 2 --size 64 64 places_deconv places_carafe   (a quick CPU run)

Each config (default: the shipped places_deconv, places_carafe and places_partialconv) is trained from random
weights for --warmup + --steps iterations on a fixed batch (carafe_inpaint.engine.benchmark_config). Reports the
median iteration time, the peak memory (CUDA: the allocator's peak; CPU: not measured) and the parameter counts,
and writes them as JSON.
"""

from __future__ import annotations

from carafe_engine.benchmark import benchmark_device, report_step_results, step_benchmark_parser

from ..engine import benchmark_config

DEFAULT_CONFIGS = ["places_deconv.yaml", "places_carafe.yaml", "places_partialconv.yaml"]


def main(argv=None) -> int:
    parser = step_benchmark_parser("carafe-inpaint-step-benchmark", __doc__, DEFAULT_CONFIGS, (256, 256))
    parser.set_defaults(batch=32)  # the paper's batch on one GPU
    args = parser.parse_args(argv)
    if min(args.size) < 4 or any(side % 4 for side in args.size):
        parser.error(f"--size: H and W must be positive multiples of 4, got {args.size[0]} {args.size[1]}")
    device, name = benchmark_device(args.device)
    results = [benchmark_config(c, device, args.batch, tuple(args.size), args.warmup, args.steps) for c in args.configs]
    report_step_results(args, name, results, "variant",
                        {"G params": "generator_parameters", "D params": "discriminator_parameters"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
