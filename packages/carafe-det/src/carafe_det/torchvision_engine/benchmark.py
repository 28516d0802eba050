"""Timing of training steps of the detectors on random batches (carafe-det-step-benchmark's measurement)."""

from __future__ import annotations

import torch
from carafe_engine.benchmark import time_steps

from ..configs import resolve_config_path
from .config import load_torchvision_config
from .model import build_model
from .trainer import build_optimizer, train_step


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
    timing = time_steps(lambda step: train_step(model, optimizer, scaler, images, targets, device, step,
                                                cfg.SOLVER.CLIP_GRADIENTS)[0], device, warmup, steps)
    m = cfg.MODEL
    padded = model.transform([torch.zeros(3, *size, device=device)])[0].tensors.shape[-2:]  # resized and padded
    return {
        "config": config,
        "model": f"{'mask' if m.MASK_ON else 'faster'} FPN {m.FPN.UPSAMPLE}"
                 + (f", mask {m.ROI_MASK_HEAD.UPSAMPLE}" if m.MASK_ON else ""),
        **{key: timing[key] for key in ("median_step_s", "step_times_s", "peak_memory_gib")},
        "parameters": sum(p.numel() for p in model.parameters()),
        "neck_parameters": sum(p.numel() for p in model.backbone.fpn.parameters()),
        "padded_input": list(padded),
        "padded": f"{padded[0]}x{padded[1]}",
        "final_loss": timing["last"].item(),
    }
