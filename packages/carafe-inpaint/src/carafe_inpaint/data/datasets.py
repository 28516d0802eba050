"""Data: where images come from (a folder, a Places365-style file list, or the embedded photographs), the training
views (random crops with free-form masks), and the fixed validation set of (image, mask) pairs.

The engine's TrainingSampler chooses the images (a seeded permutation per epoch, each process its slots of every
global batch) and hands out carafe_engine.Sample items; a view's crop, flip and mask are a pure function of the
sample's position in the global stream. So a resumed run sees exactly the samples the interrupted one would have,
whatever the number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from carafe_engine import IMAGE_SUFFIXES, DatasetError, Sample, sample_rng

from . import embedded
from .images import read_image, read_mask, resize_shorter_side, to_tensor, validation_view
from .mask_set import binned_candidates
from .masks import free_form_mask, seeded_mask

EMBEDDED = "embedded"


class DataError(DatasetError):
    """A data source or validation mask set that cannot be used; the message names the config key and path."""


@dataclass
class ImageSource:
    """A list of images: len(), name(i) and load(i) -> uint8 (H, W, 3)."""

    names: list[str]
    load: Callable[[int], np.ndarray]

    def __len__(self) -> int:
        return len(self.names)

    def name(self, index: int) -> str:
        return self.names[index]


def read_file_list(list_path: Path, root: str | Path | None) -> list[Path]:
    """Places365 lists ('/a/airfield/00000001.jpg 0' or 'Places365_val_00000001.jpg 165'): the first field of each
    line is a path relative to root (a leading '/' is ignored); root defaults to the list's folder."""
    base = Path(root) if root else list_path.parent
    lines = (line.strip() for line in list_path.read_text().splitlines())
    return [base / line.split()[0].lstrip("/") for line in lines if line and not line.startswith("#")]


def open_source(spec: str, root: str = "", split: str = "train", key: str = "DATASETS.TRAIN") -> ImageSource:
    """spec: 'embedded' (the photographs of the given split), a folder of images (searched recursively), or a
    Places365-style file list. key names the config key in error messages."""
    if spec == EMBEDDED:
        photos = embedded.photographs(split)
        return ImageSource([name for name, _ in photos], lambda i: photos[i][1])
    path = Path(spec).expanduser()
    if not spec or not path.exists():
        raise DataError(f"{key}: {spec!r} is neither 'embedded' nor an existing folder or file list")
    if path.is_dir():
        paths = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise DataError(f"{key}: the folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    else:
        paths = read_file_list(path, root)
        if not paths:
            raise DataError(f"{key}: the file list {path} names no images")
    return ImageSource([str(p) for p in paths], lambda i: read_image(paths[i]))


class TrainingViews(Dataset):
    """Item Sample(index, position, _): a random view of image `index`, flipped or not, and a free-form mask, drawn
    from sample_rng(seed, position).

    The view: the shorter side resized to size x U(1, max_scale), then a random size x size crop (so a 256x256
    Places image is mostly used whole and larger photographs are seen at several scales)."""

    def __init__(self, source: ImageSource, size: int, seed: int, max_scale: float = 1.25):
        self.source, self.size, self.seed, self.max_scale = source, size, seed, max_scale

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, sample: Sample) -> dict:
        image = self.source.load(sample.index)
        rng = sample_rng(self.seed, sample.position)
        shorter = max(self.size, round(self.size * rng.uniform(1.0, self.max_scale)))
        image = resize_shorter_side(image, shorter)
        top = int(rng.integers(0, image.shape[0] - self.size + 1))
        left = int(rng.integers(0, image.shape[1] - self.size + 1))
        image = image[top:top + self.size, left:left + self.size]
        if rng.random() < 0.5:
            image = image[:, ::-1]
        mask = free_form_mask(self.size, self.size, rng)
        return {"image": to_tensor(image), "mask": torch.from_numpy(mask)[None]}


class ValidationPairs(Dataset):
    """Fixed (image, mask) pairs: pair p is validation image p // masks_per_image in its evaluation view (shorter
    side resized to size, centre crop) with mask p: the p-th file of mask_dir (cycling; sorted by name, each must be
    size x size) or, without mask_dir, entry p of the coverage-binned mask set of mask_seed (data.mask_set: the bins
    take turns, so pair p has the bin p % 5 and every image gets masks of every bin when masks_per_image >= 5)."""

    def __init__(self, source: ImageSource, size: int, mask_seed: int, masks_per_image: int = 1,
                 mask_dir: str | Path | None = None, max_images: int = 0):
        if masks_per_image < 1:
            raise DataError(f"DATASETS.VAL_MASKS_PER_IMAGE must be >= 1, got {masks_per_image}")
        self.source, self.size, self.mask_seed, self.masks_per_image = source, size, mask_seed, masks_per_image
        self.num_images = min(len(source), max_images) if max_images > 0 else len(source)
        self.mask_files: list[Path] = []
        self.mask_candidates: tuple[int, ...] = ()
        if not mask_dir:
            self.mask_candidates = binned_candidates(size, mask_seed, len(self))
        else:
            mask_dir = Path(mask_dir)
            if not mask_dir.is_dir():
                raise DataError(f"DATASETS.VAL_MASKS: mask folder not found: {mask_dir}")
            self.mask_files = sorted(p for p in mask_dir.iterdir() if p.suffix.lower() == ".png")
            if not self.mask_files:
                raise DataError(f"DATASETS.VAL_MASKS: the folder {mask_dir} holds no .png masks")

    def __len__(self) -> int:
        return self.num_images * self.masks_per_image

    def mask(self, pair: int) -> np.ndarray:
        if self.mask_files:
            return read_mask(self.mask_files[pair % len(self.mask_files)], (self.size, self.size))
        return seeded_mask(self.size, self.size, self.mask_seed, self.mask_candidates[pair])

    def __getitem__(self, pair: int) -> dict:
        if not 0 <= pair < len(self):
            raise IndexError(pair)
        image = validation_view(self.source.load(pair // self.masks_per_image), self.size)
        return {"image": to_tensor(image), "mask": torch.from_numpy(self.mask(pair))[None], "index": pair}
