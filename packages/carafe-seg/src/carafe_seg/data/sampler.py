"""The training sample stream, as in the official UperNet trainer: every process takes batches of images of the
same orientation (portrait or landscape, so that padding stays small), each batch resized to one shorter-edge
size drawn from the list, each image flipped with probability 1/2; the stream loops over the data without end
and the schedule counts iterations.

Batch b of the stream is a pure function of (seed, b, rank, world size), so resuming at iteration i replays
exactly what an uninterrupted run would have seen from there.
"""

from __future__ import annotations

from typing import Iterator

import torch


class TrainBatchSampler:
    """Yields lists of (index, short_size, flip) for one process, from batch start_iter on, forever.

    portrait: for every sample, whether its height exceeds its width."""

    def __init__(self, portrait: list[bool], batch_size: int, short_sizes, random_flip: bool, seed: int,
                 rank: int = 0, world_size: int = 1, start_iter: int = 0):
        self.portrait = list(portrait)
        self.batch_size = batch_size
        self.short_sizes = list(short_sizes)
        self.random_flip = random_flip
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start_iter = start_iter
        groups = (sum(self.portrait), len(self.portrait) - sum(self.portrait))
        self.batches_per_pass = sum(size // batch_size for size in groups) // world_size
        if self.batches_per_pass == 0:
            raise ValueError(f"the training set ({groups[0]} portrait, {groups[1]} landscape images) has too few images "
                             f"for {world_size} process(es) x {batch_size} images of one orientation per batch")

    def __len__(self) -> int:
        """Batches per process in one pass over the data."""
        return self.batches_per_pass

    def _pass(self, number: int) -> list[list[tuple[int, int, bool]]]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + number)
        order = torch.randperm(len(self.portrait), generator=gen).tolist()
        batches = []
        for orientation in (True, False):
            group = [i for i in order if self.portrait[i] == orientation]
            batches += [group[j : j + self.batch_size] for j in range(0, len(group) - self.batch_size + 1, self.batch_size)]
        batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
        shorts = torch.randint(len(self.short_sizes), (len(batches),), generator=gen).tolist()
        flips = (torch.rand(len(batches), self.batch_size, generator=gen) < 0.5).tolist()
        mine = range(self.rank, self.batches_per_pass * self.world_size, self.world_size)
        return [[(index, self.short_sizes[shorts[b]], self.random_flip and flips[b][k])
                 for k, index in enumerate(batches[b])] for b in mine]

    def __iter__(self) -> Iterator[list[tuple[int, int, bool]]]:
        number, offset = divmod(self.start_iter, self.batches_per_pass)
        while True:
            yield from self._pass(number)[offset:]
            number, offset = number + 1, 0
