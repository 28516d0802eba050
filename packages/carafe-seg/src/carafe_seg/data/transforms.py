"""Resizing, normalization, label targets and padded batches, as in the official UperNet data pipeline: the
shorter edge goes to a given size unless that makes the longer edge exceed a maximum; images are resized
bilinearly and labels by nearest neighbour; a batch is padded to a multiple of 32 and the padding is ignored by
the loss and the metrics (it never becomes a class)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

IGNORE_INDEX = -1  # 'other' (label 0) and padding


def scaled_size(height: int, width: int, short_size: int, max_size: int) -> tuple[int, int]:
    """The (height, width) with the shorter edge at short_size, or the longer edge at max_size if that is
    smaller; the aspect ratio is kept."""
    scale = min(short_size / min(height, width), max_size / max(height, width))
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def resize(array: np.ndarray, size: tuple[int, int], resample=Image.BILINEAR) -> np.ndarray:
    """An image (H, W, 3) or, with Image.NEAREST, a label map (H, W) at size (height, width)."""
    if array.shape[:2] == tuple(size):
        return array
    return np.asarray(Image.fromarray(array).resize((size[1], size[0]), resample))


def normalize(image: np.ndarray, mean, std) -> Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, (x - mean) / std per channel."""
    tensor = torch.tensor(image).permute(2, 0, 1).float()  # a copy: arrays from PIL are read-only
    return (tensor - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def label_to_target(label: np.ndarray) -> Tensor:
    """uint8 0..K -> int64 class indices 0..K-1, with 0 ('other') -> IGNORE_INDEX."""
    return torch.from_numpy(label.astype(np.int64)) - 1


def pad_batch(images: list[Tensor], targets: list[Tensor], divisor: int) -> tuple[Tensor, Tensor]:
    """Stacks images (3, h, w) and targets (h, w) of different sizes into (N, 3, H, W) and (N, H, W), H and W the
    largest sizes rounded up to a multiple of divisor; images are padded with 0 (the mean colour after
    normalization), targets with IGNORE_INDEX."""
    height = max(image.shape[1] for image in images)
    width = max(image.shape[2] for image in images)
    height, width = -(-height // divisor) * divisor, -(-width // divisor) * divisor
    batch_images = images[0].new_zeros(len(images), 3, height, width)
    batch_targets = torch.full((len(images), height, width), IGNORE_INDEX, dtype=torch.int64)
    for i, (image, target) in enumerate(zip(images, targets)):
        batch_images[i, :, : image.shape[1], : image.shape[2]] = image
        batch_targets[i, : target.shape[0], : target.shape[1]] = target
    return batch_images, batch_targets


def subsample_targets(targets: Tensor, factor: int) -> Tensor:
    """Labels at 1/factor resolution by nearest neighbour, centre pixel of each factor x factor cell (what the
    official code's PIL nearest resize picks), to match the 1/4-resolution logits."""
    if factor == 1:
        return targets
    return targets[:, factor // 2 :: factor, factor // 2 :: factor]
