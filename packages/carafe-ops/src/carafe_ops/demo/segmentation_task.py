"""A toy dense-prediction task in which the upsampler is the only difference between models: semantic
segmentation of synthetic scenes with a small encoder (1/8 resolution) and an FPN-style decoder that
upsamples x2 three times (1/8 -> 1/4 -> 1/2 -> 1), as CARAFE is used in the paper's FPN and UperNet.
The upsampler is nearest, bilinear, a stride-2 deconvolution or CARAFEPack."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import build_upsampler
from .scenes import CLASSES


def conv_block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinySegmenter(nn.Module):
    def __init__(self, upsampler: str, width: int = 32, num_classes: int = len(CLASSES)):
        super().__init__()
        self.stage1 = conv_block(3, width, stride=2)  # 1/2
        self.stage2 = conv_block(width, width, stride=2)  # 1/4
        self.stage3 = nn.Sequential(conv_block(width, width, stride=2), conv_block(width, width, dilation=2))  # 1/8
        self.lateral = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(2))
        self.upsample = nn.ModuleList(build_upsampler(upsampler, width, 2, compressed_channels=16) for _ in range(3))
        self.classifier = nn.Sequential(conv_block(width, width), nn.Conv2d(width, num_classes, 1))

    def forward(self, image):
        c1 = self.stage1(image)
        c2 = self.stage2(c1)
        p = self.stage3(c2)
        p = self.upsample[0](p) + self.lateral[1](c2)  # FPN top-down: upsample, add the lateral
        p = self.upsample[1](p) + self.lateral[0](c1)
        return self.classifier(self.upsample[2](p))


def confusion(prediction: torch.Tensor, target: torch.Tensor, num_classes: int = len(CLASSES)) -> torch.Tensor:
    return torch.bincount(target.flatten() * num_classes + prediction.flatten(), minlength=num_classes**2).view(
        num_classes, num_classes
    )


def scores(matrix: torch.Tensor) -> dict:
    """mIoU and pixel accuracy (in %) from a confusion matrix accumulated over the whole set."""
    matrix = matrix.double()
    iou = matrix.diag() / (matrix.sum(0) + matrix.sum(1) - matrix.diag()).clamp(min=1)
    return {
        "mIoU": 100 * iou.mean().item(),
        "pixel_accuracy": 100 * (matrix.diag().sum() / matrix.sum()).item(),
        "IoU": {name: 100 * value for name, value in zip(CLASSES, iou.tolist())},
    }


def train(kind: str, images: torch.Tensor, labels: torch.Tensor, steps: int, batch: int, seed: int, log=print):
    """Adam with a cosine schedule on the cross-entropy; returns the model and its loss per step."""
    torch.manual_seed(seed)
    model = TinySegmenter(kind)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(images), (batch,), generator=gen)
        image, label = images[idx], labels[idx]
        if torch.rand(1, generator=gen).item() < 0.5:
            image, label = image.flip(-1), label.flip(-1)
        loss = F.cross_entropy(model(image), label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if (step + 1) % max(1, steps // 5) == 0 or step + 1 == steps:
            elapsed = time.perf_counter() - start
            recent = losses[-20:]
            log(f"  [{kind:>8}] step {step + 1:4d}/{steps}  loss {sum(recent) / len(recent):.3f}  "
                f"{elapsed:5.1f}s elapsed, ETA {elapsed / (step + 1) * (steps - step - 1):4.1f}s")
    return model, losses


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 32) -> dict:
    model.eval()
    matrix = sum(confusion(model(images[i : i + batch]).argmax(1), labels[i : i + batch])
                 for i in range(0, len(images), batch))
    return scores(matrix)
