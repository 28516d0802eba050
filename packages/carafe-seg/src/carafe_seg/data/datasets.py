"""torch Datasets over the ADE20K samples: training items (resized to the batch's shorter edge, maybe flipped)
and evaluation items (single scale; the label stays at the original resolution, where the metrics are computed).
"""

from __future__ import annotations

from operator import itemgetter

import torch
from carafe_engine import sample_rng
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .ade20k import Sample, read_sample
from .transforms import label_to_target, normalize, pad_batch, resize, scaled_size


class _SampleSet(Dataset):
    def __init__(self, samples: list[Sample], cfg):
        self.samples, self.seed, self.num_classes, self.input = samples, cfg.SEED, cfg.DATASETS.NUM_CLASSES, cfg.INPUT

    def __len__(self) -> int:
        return len(self.samples)


class TrainSet(_SampleSet):
    """dataset[carafe_engine.Sample] -> (image (3, h, w), target (h, w)): the image resized to the shorter edge of
    its batch (one of INPUT.TRAIN_SHORT_SIZES, drawn per iteration), flipped with probability 1/2 (drawn per
    sample), both seeded by SEED and the stream position, so they do not depend on the process count."""

    def augmentation(self, sample) -> tuple[int, bool]:
        """(shorter edge, flip) of a carafe_engine.Sample."""
        sizes = self.input.TRAIN_SHORT_SIZES
        short_size = sizes[int(sample_rng(self.seed, 1, sample.iteration).integers(len(sizes)))]
        return short_size, self.input.RANDOM_FLIP and bool(sample_rng(self.seed, 2, sample.position).random() < 0.5)

    def __getitem__(self, sample):
        return self.item(sample.index, *self.augmentation(sample))

    def item(self, index: int, short_size: int, flip: bool):
        image, label = read_sample(self.samples[index], self.num_classes)
        if flip:
            image, label = image[:, ::-1], label[:, ::-1]
        size = scaled_size(*label.shape, short_size, self.input.TRAIN_MAX_SIZE)
        image, label = resize(image.copy(), size), resize(label.copy(), size, Image.NEAREST)
        return normalize(image, self.input.PIXEL_MEAN, self.input.PIXEL_STD), label_to_target(label)


class EvalSet(_SampleSet):
    """dataset[i] -> (image resized to the test size (3, h, w), target at the original size (H, W), name)."""

    def __getitem__(self, index: int):
        image, label = read_sample(self.samples[index], self.num_classes)
        image = resize(image, scaled_size(*label.shape, self.input.TEST_SHORT_SIZE, self.input.TEST_MAX_SIZE))
        image = normalize(image, self.input.PIXEL_MEAN, self.input.PIXEL_STD)
        return image, label_to_target(label), self.samples[index].image.stem


def collate_train(items, divisor: int):
    return pad_batch(*zip(*items), divisor)


def eval_loader(samples: list[Sample], cfg, rank: int = 0, world_size: int = 1) -> DataLoader:
    """This process's share of the evaluation images (every world_size-th), one at a time (sizes differ)."""
    subset = torch.utils.data.Subset(EvalSet(samples, cfg), range(rank, len(samples), world_size))
    return DataLoader(subset, batch_size=1, num_workers=cfg.DATALOADER.NUM_WORKERS, collate_fn=itemgetter(0))
