"""ADE20K in the ADEChallengeData2016 folder layout:

    ROOT/images/training/ADE_train_00000001.jpg      ROOT/annotations/training/ADE_train_00000001.png
    ROOT/images/validation/ADE_val_00000001.jpg      ROOT/annotations/validation/ADE_val_00000001.png
    ROOT/objectInfo150.txt                           (optional: the class names)

Annotations are single-channel uint8 PNGs: 0 is 'other' (ignored in training and evaluation), 1..150 are the
classes. Images and annotations pair up by file stem and must have the same size. Every problem is a DatasetError
that names the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from carafe_engine import DatasetError, read_image  # noqa: F401 - a folder, image or annotation off the ADE20K layout
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Sample:
    image: Path
    annotation: Path


def list_samples(root: str | Path, split: str) -> list[Sample]:
    """The (image, annotation) pairs of a split, sorted by name."""
    if not str(root):
        raise DatasetError("DATASETS.ROOT is not set: give the ADEChallengeData2016 folder (DATASETS.ROOT /path/to/it)")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root} (DATASETS.ROOT)")
    folders = {"images": root / "images" / split, "annotations": root / "annotations" / split}
    for folder in folders.values():
        if not folder.is_dir():
            raise DatasetError(f"{folder} not found: expected the ADEChallengeData2016 layout "
                               f"({root}/images/{split} and {root}/annotations/{split})")
    images = {p.stem: p for p in folders["images"].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    annotations = {p.stem: p for p in folders["annotations"].iterdir() if p.suffix.lower() == ".png"}
    found = {"images": images, "annotations": annotations}
    for kind, other in (("images", "annotations"), ("annotations", "images")):
        unpaired = sorted(str(found[kind][stem]) for stem in set(found[kind]) - set(found[other]))
        if unpaired:
            listed = ", ".join(unpaired[:5]) + (f" and {len(unpaired) - 5} more" if len(unpaired) > 5 else "")
            raise DatasetError(f"{len(unpaired)} {kind} in {folders[kind]} have no {other[:-1]} of the same name in "
                               f"{folders[other]}: {listed}")
    if not images:
        raise DatasetError(f"no images ({'/'.join(IMAGE_SUFFIXES)}) in {folders['images']}")
    return [Sample(images[s], annotations[s]) for s in sorted(images)]


def read_annotation(path: Path, num_classes: int) -> np.ndarray:
    """(H, W) uint8 class indices 0..num_classes."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P"):
                raise DatasetError(f"{path}: expected a single-channel PNG of class indices (mode L), got mode "
                                   f"{image.mode}")
            label = np.array(image)
    except OSError as error:
        raise DatasetError(f"{path}: not a readable PNG: {error}") from None
    largest = int(label.max())
    if largest > num_classes:
        raise DatasetError(f"{path}: label value {largest} is out of range: expected 0 (ignored) .. {num_classes} "
                           f"(DATASETS.NUM_CLASSES)")
    return label


def read_sample(sample: Sample, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    image = read_image(sample.image)
    label = read_annotation(sample.annotation, num_classes)
    if image.shape[:2] != label.shape:
        raise DatasetError(f"{sample.image} is {image.shape[1]}x{image.shape[0]} but its annotation "
                           f"{sample.annotation} is {label.shape[1]}x{label.shape[0]} (width x height): they must match")
    return image, label


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file's header, without decoding it."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except OSError as error:
        raise DatasetError(f"{path}: not a readable image: {error}") from None


def class_names(root: str | Path, num_classes: int) -> list[str]:
    """Names of classes 1..num_classes from ROOT/objectInfo150.txt (tab-separated: Idx, Ratio, Train, Val, Name),
    'class_<i>' where there is none."""
    names = [f"class_{i}" for i in range(1, num_classes + 1)]
    info = Path(root) / "objectInfo150.txt"
    if info.is_file():
        for line in info.read_text().splitlines()[1:]:
            fields = line.split("\t")
            if len(fields) >= 5 and fields[0].strip().isdigit() and 1 <= int(fields[0]) <= num_classes:
                names[int(fields[0]) - 1] = fields[4].strip()
    return names
