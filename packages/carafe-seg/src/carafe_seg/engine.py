"""UperNet training on the engine's Trainer, as the official UperNet trainer (CSAILVision/semantic-segmentation-
pytorch): SGD with momentum, weight decay on conv weights only, the 'poly' learning rate updated every iteration,
cross-entropy at 1/4 resolution with 'other' and padding ignored, BatchNorm synchronized over the processes
(MODEL.SYNC_BN). Batches hold images of one orientation (portrait or landscape, so that padding stays small: the
sampler's aspect-ratio groups), all resized to one shorter edge drawn per batch from INPUT.TRAIN_SHORT_SIZES,
each flipped with probability 1/2.
"""

from __future__ import annotations

import time
from functools import partial

import torch
import torch.nn.functional as F
from carafe_engine import Trainer, epochs_to_iterations
from carafe_engine.benchmark import time_steps
from torch import nn

from .config import load_seg_config, describe_upsamplers
from .data.ade20k import class_names, image_size, list_samples
from .data.datasets import TrainSet, collate_train
from .data.transforms import IGNORE_INDEX, pad_batch, subsample_targets
from .evaluation import evaluate
from .modeling import build_model
from .modeling.segmentor import OUTPUT_STRIDE

CHECKPOINT_KIND = "carafe-seg"


def train_step(network: nn.Module, optimizer, images: torch.Tensor, targets: torch.Tensor,
               label_downsample: int) -> torch.Tensor:
    """One SGD step on a batch: targets at full resolution are subsampled to the logits' 1/4 resolution
    (INPUT.LABEL_DOWNSAMPLE 4) or the logits upsampled to full resolution (1 or 2). Returns the loss: the
    cross-entropy averaged over labelled pixels, 0 (with a graph) when the batch has none, instead of NaN."""
    logits = network(images)
    targets = subsample_targets(targets, label_downsample)
    if label_downsample != OUTPUT_STRIDE:
        logits = F.interpolate(logits, scale_factor=OUTPUT_STRIDE // label_downsample, mode="bilinear",
                               align_corners=False)
    if logits.shape[-2:] != targets.shape[-2:]:
        raise ValueError(f"targets {tuple(targets.shape[-2:])} (after subsampling by {label_downsample}) do not match "
                         f"the logits {tuple(logits.shape[-2:])}: pad images and labels to INPUT.SIZE_DIVISIBILITY")
    loss = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    loss = loss / (targets != IGNORE_INDEX).sum().clamp(min=1)
    if not torch.isfinite(loss):  # before the step, so that the weights stay usable
        raise FloatingPointError(f"loss is {loss.item()}; lower SOLVER.BASE_LR?")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv (and linear) weights only, not on biases and BatchNorm parameters, as the official
    trainer's group_weight."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class SegmentationTrainer(Trainer):
    checkpoint_kind = CHECKPOINT_KIND
    model_keys = ("MODEL.BACKBONE.NAME", "MODEL.UPSAMPLER")

    def build_models(self):
        return {"model": build_model(self.cfg)}

    def build_optimizers(self):
        solver = self.cfg.SOLVER
        return {"optimizer": torch.optim.SGD(parameter_groups(self.models["model"], solver.WEIGHT_DECAY),
                                             lr=solver.BASE_LR, momentum=solver.MOMENTUM)}

    def build_train_data(self):
        samples = list_samples(self.cfg.DATASETS.ROOT, self.cfg.DATASETS.TRAIN_SPLIT)
        portrait = [int(height > width) for height, width in (image_size(s.image) for s in samples)]
        self.collate = partial(collate_train, divisor=self.cfg.INPUT.SIZE_DIVISIBILITY)
        return TrainSet(samples, self.cfg), portrait if self.cfg.DATALOADER.ASPECT_RATIO_GROUPING else None

    def max_iter_for(self, batches_per_epoch: int) -> int:
        solver = self.cfg.SOLVER
        if solver.MAX_ITER > 0:
            return solver.MAX_ITER
        return epochs_to_iterations(solver.EPOCHS, solver.ITERS_PER_EPOCH or batches_per_epoch)

    def lr_factor(self, iteration: int) -> float:
        return (1 - iteration / self.max_iter) ** self.cfg.SOLVER.POLY_POWER

    def run_step(self, batch):
        images, targets = (t.to(self.device, non_blocking=True) for t in batch)
        try:
            loss = train_step(self.wrapped["model"], self.optimizers["optimizer"], images, targets,
                              self.cfg.INPUT.LABEL_DOWNSAMPLE)
        except FloatingPointError as error:
            raise FloatingPointError(f"iteration {self.iteration}: {error}") from None
        return {"loss": loss}

    def evaluate(self):
        cfg = self.cfg
        samples = list_samples(cfg.DATASETS.ROOT, cfg.DATASETS.TEST_SPLIT)
        started = time.perf_counter()
        result = evaluate(self.models["model"], samples, cfg, self.device,
                          class_names(cfg.DATASETS.ROOT, cfg.DATASETS.NUM_CLASSES))
        return {"images": len(samples), "split": cfg.DATASETS.TEST_SPLIT,
                "seconds": round(time.perf_counter() - started, 1), **result}

    def summarize(self, results):
        return (f"mIoU {results['mIoU']:.2f}  pixel accuracy {results['pixel_accuracy']:.2f} on {results['images']} "
                f"images ({results['split']}, {results['seconds']:.0f}s)")

    def describe(self):
        return f"UperNet (upsamplers {dict(self.cfg.MODEL.UPSAMPLER)})"


def benchmark_config(config: str, device: torch.device, batch: int, size: tuple[int, int], warmup: int, steps: int):
    """--warmup + --steps training steps of a config's model (random weights, seed 0) on a random batch:
    carafe-seg-step-benchmark's measurement."""
    cfg = load_seg_config(config)
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    optimizer = torch.optim.SGD(parameter_groups(model, cfg.SOLVER.WEIGHT_DECAY), lr=cfg.SOLVER.BASE_LR,
                                momentum=cfg.SOLVER.MOMENTUM)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, *size, generator=gen)
    targets = torch.randint(IGNORE_INDEX, cfg.DATASETS.NUM_CLASSES, (batch, *size), generator=gen)
    images, targets = pad_batch(list(images), list(targets), cfg.INPUT.SIZE_DIVISIBILITY)  # as the loader does
    images, targets = images.to(device), targets.to(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    timing = time_steps(lambda _: train_step(model, optimizer, images, targets, cfg.INPUT.LABEL_DOWNSAMPLE), device,
                        warmup, steps)
    return {
        "config": config,
        "upsamplers": describe_upsamplers(cfg),
        **{key: timing[key] for key in ("median_step_s", "step_times_s", "peak_memory_gib")},
        "parameters": sum(p.numel() for p in model.parameters()),
        "decoder_parameters": sum(p.numel() for p in model.decoder.parameters()),
        "final_loss": timing["last"].item(),
    }
