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

import torch
from carafe_engine.benchmark import benchmark_device, save_step_results, step_benchmark_parser, time_steps

from .configs import resolve_config_path
from .torchvision_engine.config import load_torchvision_config
from .torchvision_engine.model import build_model
from .torchvision_engine.trainer import build_optimizer, train_step

DEFAULT_CONFIGS = [f"torchvision/{name}.yaml" for name in ("faster_rcnn_R_50_FPN_1x", "faster_rcnn_R_50_FPN_carafe_1x",
                                                          "mask_rcnn_R_50_FPN_1x", "mask_rcnn_R_50_FPN_carafe_1x")]


def random_batch(batch: int, size: tuple[int, int], objects: int, num_classes: int, with_masks: bool,
                 generator: torch.Generator):
    """Images in [0, 1] and targets with `objects` random boxes (at least 32 px) and box-shaped masks."""
    height, width = size
    images, targets = [], []
    for _ in range(batch):
        x0 = torch.randint(0, width - 64, (objects,), generator=generator).float()
        y0 = torch.randint(0, height - 64, (objects,), generator=generator).float()
        w = torch.randint(32, 400, (objects,), generator=generator).float()
        h = torch.randint(32, 400, (objects,), generator=generator).float()
        boxes = torch.stack([x0, y0, (x0 + w).clamp(max=width), (y0 + h).clamp(max=height)], 1)
        target = {"boxes": boxes, "labels": torch.randint(1, num_classes + 1, (objects,), generator=generator)}
        if with_masks:
            masks = torch.zeros(objects, height, width, dtype=torch.uint8)
            for mask, (a, b, c, d) in zip(masks, boxes.long().tolist()):
                mask[b:d, a:c] = 1
            target["masks"] = masks
        images.append(torch.rand(3, height, width, generator=generator))
        targets.append(target)
    return images, targets


def describe(cfg) -> str:
    text = f"{'mask' if cfg.MODEL.MASK_ON else 'faster'} FPN {cfg.MODEL.FPN.UPSAMPLE}"
    return text + (f", mask {cfg.MODEL.ROI_MASK_HEAD.UPSAMPLE}" if cfg.MODEL.MASK_ON else "")


def benchmark_config(config: str, device: torch.device, batch: int, size: tuple[int, int], objects: int,
                     warmup: int, steps: int, seed: int = 0) -> dict:
    cfg = load_torchvision_config(resolve_config_path(config), ["MODEL.DEVICE", device.type])
    torch.manual_seed(seed)
    model = build_model(cfg).to(device).train()
    optimizer, scaler = build_optimizer(cfg, model)
    for group in optimizer.param_groups:  # the warmup's starting rate: the full one diverges on random weights
        group["lr"] = cfg.SOLVER.BASE_LR * cfg.SOLVER.WARMUP_FACTOR
    images, targets = random_batch(batch, size, objects, cfg.MODEL.ROI_HEADS.NUM_CLASSES, cfg.MODEL.MASK_ON,
                                   torch.Generator().manual_seed(seed))
    # on the device before timing: the steps measure forward, backward and update, not host-to-device copies
    images = [image.to(device) for image in images]
    targets = [{k: v.to(device) for k, v in target.items()} for target in targets]
    if device.type == "cuda":
        torch.cuda.empty_cache()
    timing = time_steps(lambda step: train_step(model, optimizer, scaler, images, targets, device, step)[0], device,
                        warmup, steps)
    padded = model.transform([torch.zeros(3, *size, device=device)])[0].tensors.shape[-2:]  # resized and padded
    return {
        "config": config,
        "model": describe(cfg),
        "median_step_s": timing["median_step_s"],
        "step_times_s": timing["step_times_s"],
        "peak_memory_gib": timing["peak_memory_gib"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "neck_parameters": sum(p.numel() for p in model.backbone.fpn.parameters()),
        "padded_input": list(padded),
        "final_loss": timing["last"].item(),
    }


def main(argv=None) -> int:
    parser = step_benchmark_parser("carafe-det-step-benchmark", __doc__, DEFAULT_CONFIGS, (800, 1333))
    parser.add_argument("--objects", type=int, default=8, help="ground-truth objects per image")
    args = parser.parse_args(argv)
    device, name = benchmark_device(args.device)
    results = [benchmark_config(c, device, args.batch, tuple(args.size), args.objects, args.warmup, args.steps)
               for c in args.configs]
    print(f"training step, batch {args.batch} x {args.size[0]}x{args.size[1]}, {name}, torch {torch.__version__}")
    print(f"{'model':<32}{'step (s)':>10}{'peak GiB':>10}{'params':>12}{'neck':>12}  padded")
    for r in results:
        memory = f"{r['peak_memory_gib']:.2f}" if r["peak_memory_gib"] is not None else "-"
        print(f"{r['model']:<32}{r['median_step_s']:10.3f}{memory:>10}{r['parameters']:12d}{r['neck_parameters']:12d}"
              f"  {r['padded_input'][0]}x{r['padded_input'][1]}")
    save_step_results(args, name, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
