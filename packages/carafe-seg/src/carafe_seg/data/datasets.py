"""torch Datasets over the ADE20K samples: training items (resized to the batch's shorter edge, maybe flipped)
and evaluation items (single scale; the label stays at the original resolution, where the metrics are computed).
"""

from __future__ import annotations

from functools import partial

import torch
from torch.utils.data import DataLoader, Dataset

from .ade20k import Sample, image_size, read_sample
from .sampler import TrainBatchSampler
from .transforms import label_to_target, normalize, pad_batch, resize_image, resize_label, scaled_size


class TrainSet(Dataset):
    """dataset[(index, short_size, flip)] -> (image (3, h, w), target (h, w)); see TrainBatchSampler."""

    def __init__(self, samples: list[Sample], cfg):
        self.samples = samples
        self.num_classes = cfg.DATASET.NUM_CLASSES
        self.max_size = cfg.INPUT.TRAIN_MAX_SIZE
        self.mean, self.std = cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key):
        index, short_size, flip = key
        image, label = read_sample(self.samples[index], self.num_classes)
        if flip:
            image, label = image[:, ::-1], label[:, ::-1]
        size = scaled_size(*label.shape, short_size, self.max_size)
        image, label = resize_image(image.copy(), size), resize_label(label.copy(), size)
        return normalize(image, self.mean, self.std), label_to_target(label)


class EvalSet(Dataset):
    """dataset[i] -> (image resized to the test size (3, h, w), target at the original size (H, W), name)."""

    def __init__(self, samples: list[Sample], cfg):
        self.samples = samples
        self.num_classes = cfg.DATASET.NUM_CLASSES
        self.short_size, self.max_size = cfg.INPUT.TEST_SHORT_SIZE, cfg.INPUT.TEST_MAX_SIZE
        self.mean, self.std = cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        image, label = read_sample(self.samples[index], self.num_classes)
        image = resize_image(image, scaled_size(*label.shape, self.short_size, self.max_size))
        return normalize(image, self.mean, self.std), label_to_target(label), self.samples[index].image.stem


def _collate_train(items, divisor: int):
    images, targets = zip(*items)
    return pad_batch(list(images), list(targets), divisor)


def _collate_single(items):
    (item,) = items
    return item


def train_loader(samples: list[Sample], cfg, rank: int, world_size: int, start_iter: int) -> DataLoader:
    """An endless loader of (images (n, 3, H, W), targets (n, H, W)) for this process, from start_iter on."""
    if cfg.SOLVER.IMS_PER_BATCH % world_size:
        raise ValueError(f"SOLVER.IMS_PER_BATCH ({cfg.SOLVER.IMS_PER_BATCH}) must be divisible by the number of "
                         f"processes ({world_size})")
    portrait = [height > width for height, width in (image_size(s.image) for s in samples)]
    sampler = TrainBatchSampler(portrait, cfg.SOLVER.IMS_PER_BATCH // world_size, cfg.INPUT.TRAIN_SHORT_SIZES,
                                cfg.INPUT.RANDOM_FLIP, cfg.SEED, rank, world_size, start_iter)
    return DataLoader(TrainSet(samples, cfg), batch_sampler=sampler, num_workers=cfg.DATALOADER.NUM_WORKERS,
                      collate_fn=partial(_collate_train, divisor=cfg.INPUT.SIZE_DIVISIBILITY),
                      persistent_workers=cfg.DATALOADER.NUM_WORKERS > 0)


def eval_loader(samples: list[Sample], cfg, rank: int = 0, world_size: int = 1) -> DataLoader:
    """This process's share of the evaluation images (every world_size-th), one at a time (sizes differ)."""
    subset = torch.utils.data.Subset(EvalSet(samples, cfg), range(rank, len(samples), world_size))
    return DataLoader(subset, batch_size=1, num_workers=cfg.DATALOADER.NUM_WORKERS, collate_fn=_collate_single)
