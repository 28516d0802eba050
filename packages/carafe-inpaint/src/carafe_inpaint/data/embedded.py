"""The embedded default data set: real photographs that scikit-image ships inside its wheel (``skimage.data``; no
download), split into training and held-out validation photographs. Grayscale photographs are repeated into three
channels. The demo and the tests train and evaluate on them; masks come from the free-form generator.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from .images import resize_shorter_side

# (name in skimage.data, which image of a tuple-returning loader)
TRAIN_PHOTOS = (
    ("astronaut", None), ("chelsea", None), ("hubble_deep_field", None), ("immunohistochemistry", None),
    ("retina", None), ("stereo_motorcycle", 0), ("brick", None), ("grass", None), ("gravel", None),
    ("moon", None), ("coins", None), ("clock", None),
)
VAL_PHOTOS = (("coffee", None), ("rocket", None), ("camera", None))

# photographs are kept with this shorter side: the training crops are drawn from 256x256 views at most, and
# shrinking once here keeps every later resize cheap
STORED_SHORTER_SIDE = 320


def _load(name: str, which: int | None) -> np.ndarray:
    import skimage.data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage may warn about optional dependencies of other loaders
        image = getattr(skimage.data, name)()
    image = np.asarray(image if which is None else image[which])
    if image.dtype != np.uint8:
        raise ValueError(f"skimage.data.{name} is {image.dtype}, expected uint8")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3])
    if min(image.shape[:2]) > STORED_SHORTER_SIDE:
        image = resize_shorter_side(image, STORED_SHORTER_SIDE)
    return image


@lru_cache(maxsize=2)
def photographs(split: str) -> tuple[tuple[str, np.ndarray], ...]:
    """(name, uint8 (H, W, 3)) of the 'train' or 'val' photographs."""
    if split not in ("train", "val"):
        raise ValueError(f"embedded photographs: split must be 'train' or 'val', got {split!r}")
    chosen = TRAIN_PHOTOS if split == "train" else VAL_PHOTOS
    return tuple((name if which is None else f"{name}_{which}", _load(name, which)) for name, which in chosen)
