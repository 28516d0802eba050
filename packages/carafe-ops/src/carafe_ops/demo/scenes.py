"""Synthetic scenes for the demo's toy segmentation task: anti-aliased discs, boxes and stripe patches of random
colours on smooth random backgrounds, with a label per pixel. Generated from a seed: no download needed."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CLASSES = ("background", "disc", "box", "stripes")


def make_scenes(count: int, size: int = 64, seed: int = 0, supersample: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (count, 3, size, size) in [0, 1] and labels (count, size, size) indexing CLASSES. The class of a
    shape is its geometry, never its colour, so telling them apart takes spatial context."""
    gen = torch.Generator().manual_seed(seed)
    fine = size * supersample
    coords = (torch.arange(fine, dtype=torch.float32) + 0.5) / fine
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    images = torch.empty(count, 3, fine, fine)
    labels = torch.zeros(count, fine, fine, dtype=torch.long)

    def uniform(low=0.0, high=1.0):
        return low + (high - low) * torch.rand(1, generator=gen).item()

    for i in range(count):
        c0, c1 = torch.rand(3, 1, 1, generator=gen), torch.rand(3, 1, 1, generator=gen)
        angle = uniform(0, 2 * math.pi)
        image = c0 + (c1 - c0) * (xx * math.cos(angle) + yy * math.sin(angle)).clamp(0, 1)
        label = labels[i]
        for _ in range(int(torch.randint(2, 6, (1,), generator=gen))):
            colour = torch.rand(3, 1, 1, generator=gen)
            cx, cy, theta = uniform(), uniform(), uniform(0, math.pi)
            u = (xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta)
            v = -(xx - cx) * math.sin(theta) + (yy - cy) * math.cos(theta)
            kind = int(torch.randint(1, len(CLASSES), (1,), generator=gen))
            if kind == 1:
                inside = u**2 + v**2 < uniform(0.08, 0.22) ** 2
            elif kind == 2:
                inside = (u.abs() < uniform(0.06, 0.2)) & (v.abs() < uniform(0.06, 0.2))
            else:
                period = uniform(0.06, 0.12)
                inside = (torch.remainder(u, period) < period / 2) & (u.abs() < 0.18) & (v.abs() < uniform(0.1, 0.2))
            image = torch.where(inside, colour, image)
            label[inside] = kind
        images[i] = image
    offset = supersample // 2
    return F.avg_pool2d(images, supersample), labels[:, offset::supersample, offset::supersample].contiguous()
