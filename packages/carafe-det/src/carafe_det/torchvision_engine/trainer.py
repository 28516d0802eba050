"""The torchvision engine's task on carafe_engine's Trainer: SGD with warmup and step decay (epochs in
SOLVER.STEPS), one train_step (with the AMP GradScaler of SOLVER.AMP), horizontal flips drawn per sample of the
engine's TrainingSampler, COCO evaluation (box and mask AP).

The engine owns the rest (device, DistributedDataParallel, the output folder, checkpoints with exact resume, the
log line, the evaluation and checkpoint periods): see carafe_engine.trainer. Besides the engine's entries, a
checkpoint holds the GradScaler ("scaler") and the training set's class_names and category_ids, which
carafe-det-predict reads."""

from __future__ import annotations

import bisect
import contextlib
import functools

import torch
from carafe_engine import ConfigError, DatasetError, Trainer, epochs_to_iterations
from torch import nn

from .config import checkpoint_kind
from .data import CocoDetectionDataset, collate
from .evaluate import STAT_NAMES, evaluate
from .model import MODEL_KEYS, build_model


def check_classes(cfg, dataset: CocoDetectionDataset) -> None:
    """The model's class count fits the dataset."""
    if len(dataset.class_names) != cfg.MODEL.ROI_HEADS.NUM_CLASSES:
        raise ConfigError(f"MODEL.ROI_HEADS.NUM_CLASSES is {cfg.MODEL.ROI_HEADS.NUM_CLASSES} but "
                          f"{dataset.annotation_file} has {len(dataset.class_names)} categories")


def schedule_length(solver, batches_per_epoch: int) -> int:
    """SOLVER.MAX_ITER when > 0, else SOLVER.EPOCHS in iterations."""
    return solver.MAX_ITER if solver.MAX_ITER > 0 else epochs_to_iterations(solver.EPOCHS, batches_per_epoch)


def lr_factor(solver, iteration: int, batches_per_epoch: int) -> float:
    """The learning rate of `iteration` over SOLVER.BASE_LR: x GAMMA at each of SOLVER.STEPS (epochs), and a
    linear warmup from WARMUP_FACTOR over the first WARMUP_ITERS iterations."""
    milestones = sorted(round(epoch * batches_per_epoch) for epoch in solver.STEPS)
    factor = solver.GAMMA ** bisect.bisect_right(milestones, iteration)
    if iteration < solver.WARMUP_ITERS:
        alpha = iteration / solver.WARMUP_ITERS
        factor *= solver.WARMUP_FACTOR * (1 - alpha) + alpha
    return factor


def train_step(model, optimizer, scaler, images, targets, device, iteration: int = 0, clip=None):
    """One SGD step on a batch (what carafe-det-train and the step benchmark run); returns the total loss and
    the loss dict. With an enabled GradScaler (SOLVER.AMP on CUDA) the forward runs in float16 autocast. clip: the
    SOLVER.CLIP_GRADIENTS section; when enabled, the gradients' norm is clipped to its CLIP_VALUE."""
    images = [image.to(device, non_blocking=True) for image in images]
    targets = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]
    autocast = torch.autocast("cuda", dtype=torch.float16) if scaler.is_enabled() else contextlib.nullcontext()
    with autocast:
        loss_dict = model(images, targets)
    loss = sum(loss_dict.values())
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {loss.item()} at iteration {iteration}: "
                                 f"{ {k: v.item() for k, v in loss_dict.items()} }")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip is not None and clip.ENABLED:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]],
                                       clip.CLIP_VALUE, clip.NORM_TYPE)
    scaler.step(optimizer)
    scaler.update()
    return loss, loss_dict


def build_optimizer(cfg, model: nn.Module):
    """SGD over the trainable parameters, and the GradScaler (enabled by SOLVER.AMP on CUDA)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.SOLVER.BASE_LR, momentum=cfg.SOLVER.MOMENTUM,
                                weight_decay=cfg.SOLVER.WEIGHT_DECAY)
    device_type = next(model.parameters()).device.type
    scaler = torch.amp.GradScaler(device_type, enabled=cfg.SOLVER.AMP and device_type == "cuda")
    return optimizer, scaler


def format_metrics(results: dict, title: str) -> str:
    """A table of the box (and mask) AP numbers of evaluate()'s results."""
    lines = [title, f"{'':6}" + "".join(f"{name:>8}" for name in STAT_NAMES)]
    for kind in ("bbox", "segm"):
        if kind in results:
            lines.append(f"{kind:6}" + "".join(f"{v:8.2f}" if v is not None else f"{'-':>8}"
                                               for v in results[kind].values()))
    return "\n".join(lines)


class DetectionTrainer(Trainer):
    """Faster / Mask R-CNN (baseline or CARAFE by the config) on COCO folders (DATASETS.ROOT, TRAIN, TEST)."""

    train_set: CocoDetectionDataset
    batches_per_epoch = 1
    model_keys = MODEL_KEYS

    def kind(self) -> str:
        return checkpoint_kind(self.cfg)

    def describe(self) -> str:
        m = self.cfg.MODEL
        mask_head = f", mask head {m.ROI_MASK_HEAD.UPSAMPLE}" if m.MASK_ON else ""
        return f"{self.kind()} (FPN {m.FPN.UPSAMPLE}/{m.FPN.TOP_LEVEL}{mask_head})"

    def build_models(self) -> dict[str, nn.Module]:
        return {"model": build_model(self.cfg)}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizer, self.scaler = build_optimizer(self.cfg, self.models["model"])
        return {"optimizer": optimizer}

    @functools.cached_property
    def test_set(self) -> CocoDetectionDataset:
        dataset = CocoDetectionDataset(self.cfg.DATASETS.ROOT, self.cfg.DATASETS.TEST, self.cfg.MODEL.MASK_ON)
        check_classes(self.cfg, dataset)
        return dataset

    def build_train_data(self):
        cfg = self.cfg
        self.train_set = CocoDetectionDataset(cfg.DATASETS.ROOT, cfg.DATASETS.TRAIN, cfg.MODEL.MASK_ON,
                                              filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
                                              hflip_prob=cfg.INPUT.HFLIP_PROB, seed=cfg.SEED)
        check_classes(cfg, self.train_set)
        test_set = self.test_set  # checked before training rather than at its end
        if (test_set.category_ids, test_set.class_names) != (self.train_set.category_ids, self.train_set.class_names):
            raise DatasetError(f"{test_set.annotation_file} and {self.train_set.annotation_file} have different "
                               "categories")
        return self.train_set, self.train_set.aspect_ratio_groups() if cfg.DATALOADER.ASPECT_RATIO_GROUPING else None

    collate = staticmethod(collate)

    def max_iter_for(self, batches_per_epoch: int) -> int:
        self.batches_per_epoch = batches_per_epoch
        return schedule_length(self.cfg.SOLVER, batches_per_epoch)

    def lr_factor(self, iteration: int) -> float:
        return lr_factor(self.cfg.SOLVER, iteration, self.batches_per_epoch)

    def run_step(self, batch) -> dict:
        images, targets = batch
        loss, loss_dict = train_step(self.wrapped["model"], self.optimizers["optimizer"], self.scaler, images,
                                     targets, self.device, self.iteration, self.cfg.SOLVER.CLIP_GRADIENTS)
        return {"loss": loss, **loss_dict}

    def evaluate(self) -> dict | None:
        metrics = evaluate(self.models["model"], self.test_set, self.device, self.cfg.MODEL.MASK_ON,
                           batch_size=self.cfg.TEST.IMS_PER_BATCH)
        if metrics is None:
            return None
        return {"dataset": self.test_set.image_dir.name, "images": len(self.test_set), **metrics}

    def summarize(self, results: dict) -> str:
        return format_metrics(results, f"{self.test_set.annotation_file.name} ({results['images']} images)")

    def extra_state(self) -> dict:
        return {"scaler": self.scaler.state_dict(), "class_names": self.train_set.class_names,
                "category_ids": self.train_set.category_ids}

    def load_extra_state(self, state: dict) -> None:
        self.scaler.load_state_dict(state["scaler"])


__all__ = ["DetectionTrainer", "build_optimizer", "format_metrics", "lr_factor", "schedule_length", "train_step"]
