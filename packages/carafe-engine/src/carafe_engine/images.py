"""Reading the images a user points a command at: one reader and one --input expander for every task."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DatasetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path: str | Path) -> np.ndarray:
    """An image file as a writable (H, W, 3) uint8 RGB array (grayscale and palette images converted, alpha
    dropped); DatasetError naming the file when it is missing or cannot be decoded."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DatasetError(f"cannot read image {path}: {error}") from None


def list_images(inputs: Iterable[str | Path], flag: str = "--input") -> list[Path]:
    """Files as given; folders expanded to their images (sorted, not recursive). DatasetError naming `flag` for a
    path that does not exist or a folder without images."""
    images = []
    for path in map(Path, inputs):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise DatasetError(f"{flag} {path}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            images += found
        elif path.is_file():
            images.append(path)
        else:
            raise DatasetError(f"{flag} {path}: no such file or folder")
    return images
