"""carafe-det-step-benchmark: time and peak memory of one training step of the paper's detectors, baseline vs
CARAFE, at the paper's input size.

    carafe-det-step-benchmark --output det_step_benchmark.json          # on a GPU: the four paper configs
    carafe-det-step-benchmark --device cpu --size 128 160 --steps 1 --warmup 0 \\
        torchvision/tiny_shapes_mask_rcnn.yaml torchvision/tiny_shapes_mask_rcnn_carafe.yaml   (a smoke test)

Each torchvision-engine config (default: the four shipped paper configs) is built with random weights (no
ImageNet file needed) and trained for --warmup + --steps steps, with carafe-det-train's optimizer and step, on a
random batch of --batch images (default 2: what each of the paper's 8 GPUs holds) of --size H W (default
800 x 1333: shorter edge 800, longer 1333, which the model's resize keeps) with --objects random boxes and masks
each. Reports the median step time, the peak memory (CUDA: the allocator's peak; CPU: not measured) and the
parameter counts, as a table and as JSON.
"""

from __future__ import annotations

from carafe_engine.benchmark import benchmark_device, report_step_results, step_benchmark_parser

from ..torchvision_engine.benchmark import benchmark_config

DEFAULT_CONFIGS = [f"torchvision/{name}.yaml" for name in ("faster_rcnn_R_50_FPN_1x", "faster_rcnn_R_50_FPN_carafe_1x",
                                                          "mask_rcnn_R_50_FPN_1x", "mask_rcnn_R_50_FPN_carafe_1x")]


def main(argv=None) -> int:
    parser = step_benchmark_parser("carafe-det-step-benchmark", __doc__, DEFAULT_CONFIGS, (800, 1333))
    parser.add_argument("--objects", type=int, default=8, help="ground-truth objects per image")
    args = parser.parse_args(argv)
    device, name = benchmark_device(args.device)
    results = [benchmark_config(c, device, args.batch, tuple(args.size), args.objects, args.warmup, args.steps)
               for c in args.configs]
    report_step_results(args, name, results, "model", {"params": "parameters", "neck": "neck_parameters",
                                                        "padded": "padded"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
