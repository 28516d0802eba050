"""Reading and writing images and masks, and the conversions between files, arrays and tensors.

Conventions: an image array is uint8 (H, W, 3) RGB; an image tensor is float (3, H, W) in [-1, 1] (the paper's
scaling); a mask array is float32 (H, W) and a mask tensor float (1, H, W), both with 1 in the hole. Mask files are
8-bit PNGs with 255 in the hole and 0 elsewhere (a 0/1 file is read too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from carafe_engine import DatasetError, read_image  # noqa: F401 - images are read as every task reads them
from PIL import Image, UnidentifiedImageError


class ImageReadError(DatasetError):
    """A mask file that cannot be used, with the file's path in the message."""


def read_mask(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """A binary mask file as float32 (H, W), 1 = hole. size: (H, W) the mask must have."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"mask not found: {path}")
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("L") if image.mode in ("1", "P", "LA") else image)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ImageReadError(f"cannot read mask {path}: {error}") from None
    if array.ndim == 3:
        colour = array[..., :3]
        if not (colour == colour[..., :1]).all():
            raise ImageReadError(f"mask {path} is a colour image; expected a single-channel binary mask "
                                 f"(255 or 1 = hole, 0 = keep)")
        array = colour[..., 0]
    if size is not None and tuple(array.shape) != tuple(size):
        raise ImageReadError(f"mask {path} is {array.shape[0]}x{array.shape[1]} (HxW); expected {size[0]}x{size[1]} "
                             f"to match its image")
    values = np.unique(array).tolist()
    if set(values) <= {0, 255} or set(values) <= {0, 1}:
        return (array > 0).astype(np.float32)
    shown = ", ".join(str(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
    raise ImageReadError(f"mask {path} is not binary: it has the values {shown}; expected only 0 and 255 "
                         f"(or 0 and 1), 255 = hole (save masks as PNG: JPEG compression makes them non-binary)")


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.asarray(mask) > 0.5).astype(np.uint8) * 255, mode="L").save(path)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(127.5).sub(1.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """float (3, H, W) in [-1, 1] -> uint8 (H, W, 3)."""
    array = image.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte()
    return array.permute(1, 2, 0).cpu().numpy()


def write_image(path: str | Path, image: torch.Tensor | np.ndarray) -> None:
    array = to_uint8(image) if isinstance(image, torch.Tensor) else np.asarray(image)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def resize_shorter_side(image: np.ndarray, shorter: int, resample: int = Image.BICUBIC) -> np.ndarray:
    """Resizes so the shorter side is `shorter` (bicubic, antialiased when shrinking; or `resample`), keeping the
    aspect ratio."""
    h, w = image.shape[:2]
    scale = shorter / min(h, w)
    size = (max(shorter, round(w * scale)), max(shorter, round(h * scale)))
    if size == (w, h):
        return image
    return np.asarray(Image.fromarray(image).resize(size, resample))


def center_crop(array: np.ndarray, size: int) -> np.ndarray:
    h, w = array.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return array[top:top + size, left:left + size]


def validation_view(image: np.ndarray, size: int, resample: int = Image.BICUBIC) -> np.ndarray:
    """The fixed evaluation view of an image: shorter side resized to `size`, then the central size x size crop."""
    return np.ascontiguousarray(center_crop(resize_shorter_side(image, size, resample), size))
