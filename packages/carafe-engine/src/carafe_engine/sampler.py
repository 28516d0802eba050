"""The one training batch sampler of the toolkit: an endless, seeded stream of global batches, cut into process
shares, that a resumed run continues exactly and that does not depend on the number of processes.

Global batch i (iteration i) is a pure function of (seed, i): epoch e = i // batches_per_epoch orders the dataset
by a permutation seeded with (seed, e) and cuts it into batches of `batch_size` (the incomplete last one is
dropped); with `group_ids` (aspect-ratio grouping: e.g. portrait vs landscape) every batch is taken from one
group, and the epoch's batches are shuffled. Process r of W takes the r-th of W equal slices of every global
batch, so W processes together see exactly the batches one process sees with the same total batch size.

Each item is a `Sample(index, position, iteration)`: `position` (iteration * batch_size + slot) is unique in the
stream and seeds that sample's augmentation (flip, crop, mask), `iteration` seeds what a batch shares (one
resize scale for all its images) - so the augmentation, too, does not depend on the process count or on the
data-loader workers.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch

from .config import ConfigError


class Sample(NamedTuple):
    index: int  # into the dataset
    position: int  # in the global stream: iteration * batch_size + slot
    iteration: int


def sample_rng(seed: int, *keys: int) -> np.random.Generator:
    """A NumPy generator seeded by (seed, *keys): the augmentation of one Sample, e.g. sample_rng(SEED, position)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *(int(k) for k in keys)])


class TrainingSampler(torch.utils.data.Sampler):
    """Batch sampler (DataLoader(batch_sampler=...)) of this process's share of global batches start_iter ..
    max_iter - 1. batch_size: the total over all processes (SOLVER.IMS_PER_BATCH)."""

    def __init__(self, dataset_size: int, batch_size: int, seed: int, max_iter: int, start_iter: int = 0,
                 rank: int = 0, world_size: int = 1, group_ids: Sequence[int] | None = None):
        if batch_size < 1:
            raise ConfigError(f"SOLVER.IMS_PER_BATCH must be >= 1, got {batch_size}")
        if batch_size % world_size:
            raise ConfigError(f"SOLVER.IMS_PER_BATCH ({batch_size}) must be divisible by the number of processes "
                              f"({world_size})")
        if group_ids is not None and len(group_ids) != dataset_size:
            raise ValueError(f"group_ids has {len(group_ids)} entries for {dataset_size} samples")
        self.dataset_size, self.batch_size, self.seed = dataset_size, batch_size, seed
        self.start_iter, self.max_iter = start_iter, max_iter
        self.rank, self.world_size = rank, world_size
        self.group_ids = None if group_ids is None else np.asarray(group_ids)
        groups = [dataset_size] if group_ids is None else np.bincount(self.group_ids).tolist()
        self.batches_per_epoch = sum(size // batch_size for size in groups)
        if self.batches_per_epoch == 0:
            detail = "" if group_ids is None else f" (groups of {', '.join(map(str, groups))} images)"
            raise ConfigError(f"the training set has too few images{detail} for one batch of SOLVER.IMS_PER_BATCH "
                              f"{batch_size}")
        self._epoch, self._batches = -1, []

    def __len__(self) -> int:
        return max(0, self.max_iter - self.start_iter)

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The global batches (dataset indices) of one epoch."""
        rng = sample_rng(self.seed, 0x5A3B, epoch)
        order = rng.permutation(self.dataset_size)
        if self.group_ids is None:
            groups = [order]
        else:  # each group's members in the epoch's order
            groups = [order[self.group_ids[order] == group] for group in np.unique(self.group_ids)]
        size = self.batch_size
        batches = [batch for members in groups for batch in members[:len(members) // size * size].reshape(-1, size)]
        if self.group_ids is not None:  # the groups' batches interleaved
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def global_batch(self, iteration: int) -> list[Sample]:
        epoch, step = divmod(iteration, self.batches_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self.epoch_batches(epoch)
        first = iteration * self.batch_size
        return [Sample(int(index), first + slot, iteration) for slot, index in enumerate(self._batches[step])]

    def __iter__(self) -> Iterator[list[Sample]]:
        share = self.batch_size // self.world_size
        for iteration in range(self.start_iter, self.max_iter):
            yield self.global_batch(iteration)[self.rank * share:(self.rank + 1) * share]
