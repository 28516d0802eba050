"""Synthetic scenes for the toy upsampling task: anti-aliased discs, boxes and stripes on smooth backgrounds,
generated from a seed, so the demo needs no download."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def make_scenes(count: int, size: int = 64, seed: int = 0, supersample: int = 4) -> torch.Tensor:
    """(count, 3, size, size) images in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    fine = size * supersample
    coords = (torch.arange(fine, dtype=torch.float32) + 0.5) / fine
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    images = torch.empty(count, 3, fine, fine)
    for i in range(count):
        rand = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
        c0, c1 = rand(3, 1, 1), rand(3, 1, 1)
        angle = rand(1).item() * 2 * math.pi
        ramp = (xx * math.cos(angle) + yy * math.sin(angle)).clamp(0, 1)
        image = c0 + (c1 - c0) * ramp
        for _ in range(int(torch.randint(3, 7, (1,), generator=gen))):
            colour = rand(3, 1, 1)
            cx, cy = rand(2).tolist()
            kind = int(torch.randint(0, 3, (1,), generator=gen))
            theta = rand(1).item() * math.pi
            u = (xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta)
            v = -(xx - cx) * math.sin(theta) + (yy - cy) * math.cos(theta)
            if kind == 0:  # disc
                inside = u**2 + v**2 < (0.05 + 0.2 * rand(1).item()) ** 2
            elif kind == 1:  # rotated box
                inside = (u.abs() < 0.05 + 0.2 * rand(1).item()) & (v.abs() < 0.05 + 0.2 * rand(1).item())
            else:  # stripes
                period = 0.05 + 0.1 * rand(1).item()
                inside = (torch.remainder(u, period) < period / 2) & (v.abs() < 0.2)
            image = torch.where(inside, colour, image)
        images[i] = image
    return F.avg_pool2d(images, supersample)  # anti-aliasing
