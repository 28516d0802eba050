"""A toy task where the upsampler is the only difference between models: x2 super-resolution of synthetic
scenes. Each model is stem convolutions -> upsampler x2 -> a 3x3 convolution, added to a bilinear upsampling of
the input; the upsampler is nearest, bilinear, a stride-2 deconvolution or CARAFEPack."""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from ..modules import CARAFEPack

UPSAMPLERS = ("nearest", "bilinear", "deconv", "carafe")


class Interpolate(nn.Module):
    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode=self.mode, **({} if self.mode == "nearest" else {"align_corners": False}))


def make_upsampler(kind: str, channels: int) -> nn.Module:
    if kind in ("nearest", "bilinear"):
        return Interpolate(kind)
    if kind == "deconv":
        return nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1)
    if kind == "carafe":
        return CARAFEPack(channels, 2, up_kernel=5, compressed_channels=16)
    raise ValueError(f"unknown upsampler {kind!r}; expected one of {UPSAMPLERS}")


class Upsampler2x(nn.Module):
    def __init__(self, kind: str, channels: int = 32):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()
        )
        self.upsample = make_upsampler(kind, channels)
        self.head = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, low_res):
        base = F.interpolate(low_res, scale_factor=2, mode="bilinear", align_corners=False)
        return base + self.head(self.upsample(self.stem(low_res)))


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    mse = F.mse_loss(prediction.clamp(0, 1), target).item()
    return 10 * math.log10(1 / max(mse, 1e-12))


def train(kind: str, train_images: torch.Tensor, steps: int, batch: int, seed: int, log=print) -> tuple[nn.Module, list[float]]:
    """Adam on the L1 loss; returns the model and its loss per step."""
    torch.manual_seed(seed)
    model = Upsampler2x(kind)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    start = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, len(train_images), (batch,), generator=gen)
        target = train_images[idx]
        if torch.rand(1, generator=gen).item() < 0.5:
            target = target.flip(-1)
        loss = F.l1_loss(model(F.avg_pool2d(target, 2)), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if (step + 1) % max(1, steps // 4) == 0 or step + 1 == steps:
            elapsed = time.perf_counter() - start
            eta = elapsed / (step + 1) * (steps - step - 1)
            log(f"  [{kind:>8}] step {step + 1:4d}/{steps}  L1 {sum(losses[-20:]) / len(losses[-20:]):.4f}"
                f"  {elapsed:5.1f}s elapsed, ETA {eta:4.1f}s")
    return model, losses


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor) -> float:
    model.eval()
    return psnr(model(F.avg_pool2d(images, 2)), images)
