"""torch Datasets over the ADE20K samples: training items (resized to the batch's shorter edge, maybe flipped)
and evaluation items (single scale; the label stays at the original resolution, where the metrics are computed).
"""

from __future__ import annotations

import torch
from carafe_engine import sample_rng
from torch.utils.data import DataLoader, Dataset

from .ade20k import Sample, read_sample
from .transforms import label_to_target, normalize, pad_batch, resize_image, resize_label, scaled_size


class TrainSet(Dataset):
    """dataset[carafe_engine.Sample] -> (image (3, h, w), target (h, w)): the image resized to the shorter edge of
    its batch (one of INPUT.TRAIN_SHORT_SIZES, drawn per iteration), flipped with probability 1/2 (drawn per
    sample), both seeded by SEED and the stream position, so they do not depend on the process count."""

    def __init__(self, samples: list[Sample], cfg):
        self.samples = samples
        self.seed, self.short_sizes, self.random_flip = cfg.SEED, cfg.INPUT.TRAIN_SHORT_SIZES, cfg.INPUT.RANDOM_FLIP
        self.num_classes = cfg.DATASETS.NUM_CLASSES
        self.max_size = cfg.INPUT.TRAIN_MAX_SIZE
        self.mean, self.std = cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD

    def __len__(self) -> int:
        return len(self.samples)

    def augmentation(self, sample) -> tuple[int, bool]:
        """(shorter edge, flip) of a carafe_engine.Sample."""
        short_size = self.short_sizes[int(sample_rng(self.seed, 1, sample.iteration).integers(len(self.short_sizes)))]
        return short_size, self.random_flip and bool(sample_rng(self.seed, 2, sample.position).random() < 0.5)

    def __getitem__(self, sample):
        return self.item(sample.index, *self.augmentation(sample))

    def item(self, index: int, short_size: int, flip: bool):
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
        self.num_classes = cfg.DATASETS.NUM_CLASSES
        self.short_size, self.max_size = cfg.INPUT.TEST_SHORT_SIZE, cfg.INPUT.TEST_MAX_SIZE
        self.mean, self.std = cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        image, label = read_sample(self.samples[index], self.num_classes)
        image = resize_image(image, scaled_size(*label.shape, self.short_size, self.max_size))
        return normalize(image, self.mean, self.std), label_to_target(label), self.samples[index].image.stem


def collate_train(items, divisor: int):
    images, targets = zip(*items)
    return pad_batch(list(images), list(targets), divisor)


def _collate_single(items):
    (item,) = items
    return item


def eval_loader(samples: list[Sample], cfg, rank: int = 0, world_size: int = 1) -> DataLoader:
    """This process's share of the evaluation images (every world_size-th), one at a time (sizes differ)."""
    subset = torch.utils.data.Subset(EvalSet(samples, cfg), range(rank, len(samples), world_size))
    return DataLoader(subset, batch_size=1, num_workers=cfg.DATALOADER.NUM_WORKERS, collate_fn=_collate_single)
