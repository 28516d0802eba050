"""Evaluation as in the official UperNet code: per class, the intersection and the union of prediction and ground
truth are summed over the whole set (not averaged per image); IoU = sum of intersections / sum of unions, mIoU
their mean; pixel accuracy = correct / labelled pixels. Pixels labelled 0 ('other') are ignored (a prediction
there counts for nothing). Predictions are made at a single scale and compared at the original resolution.

Difference from the official script: mIoU averages the classes that occur (in the ground truth or in the
predictions) instead of all 150; on ADE20K val every class occurs, so the numbers are the same, and on small
datasets with a few classes the mIoU is not dragged down by classes that are absent.
"""

from __future__ import annotations

import math

import torch
from carafe_engine import all_reduce_sum, get_rank, get_world_size, progress_bar
from torch import Tensor

from .data.datasets import eval_loader
from .data.transforms import IGNORE_INDEX


class SegmentationMetrics:
    """Accumulates per-class intersections, unions and label areas over any number of images."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.intersection = torch.zeros(num_classes, dtype=torch.float64)
        self.union = torch.zeros(num_classes, dtype=torch.float64)
        self.labelled = torch.zeros(num_classes, dtype=torch.float64)

    def update(self, prediction: Tensor, target: Tensor) -> None:
        """prediction: class indices 0..K-1; target: class indices with IGNORE_INDEX where unlabelled; same shape."""
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
        valid = target != IGNORE_INDEX
        predicted, truth = prediction[valid].long().cpu(), target[valid].long().cpu()
        k = self.num_classes
        intersection = torch.bincount(truth[predicted == truth], minlength=k)[:k].double()
        area_predicted = torch.bincount(predicted, minlength=k)[:k].double()
        area_truth = torch.bincount(truth, minlength=k)[:k].double()
        self.intersection += intersection
        self.union += area_predicted + area_truth - intersection
        self.labelled += area_truth

    def all_reduce(self) -> None:
        """Sums the counts of every process (each evaluated its share of the images)."""
        counts = all_reduce_sum(torch.stack([self.intersection, self.union, self.labelled]))
        self.intersection, self.union, self.labelled = counts.unbind(0)

    def compute(self, names: list[str] | None = None) -> dict:
        """mIoU, pixel accuracy (%), and per-class IoU (%) keyed by name (None for classes that never occur)."""
        names = names or [f"class_{i}" for i in range(1, self.num_classes + 1)]
        occurs = self.union > 0
        iou = torch.where(occurs, self.intersection / self.union.clamp(min=1), torch.tensor(math.nan, dtype=torch.float64))
        labelled = self.labelled.sum()
        return {
            "mIoU": 100 * iou[occurs].mean().item() if occurs.any() else 0.0,
            "pixel_accuracy": 100 * (self.intersection.sum() / labelled).item() if labelled > 0 else 0.0,
            "classes_evaluated": int(occurs.sum()),
            "per_class_IoU": {name: (None if math.isnan(v) else 100 * v) for name, v in zip(names, iou.tolist())},
        }


@torch.no_grad()
def evaluate(model, samples, cfg, device, names=None) -> dict:
    """Single-scale evaluation of model (an UPerNetSegmentor, not DDP-wrapped) on samples, shared among the
    processes; every process returns the same metrics."""
    was_training = model.training
    model.eval()
    metrics = SegmentationMetrics(cfg.DATASETS.NUM_CLASSES)
    for image, target, _name in progress_bar(eval_loader(samples, cfg, get_rank(), get_world_size()), "evaluating"):
        logits = model.segment(image[None].to(device), output_size=target.shape)
        metrics.update(logits.argmax(1)[0], target.to(logits.device))
    metrics.all_reduce()
    model.train(was_training)
    return metrics.compute(names)
