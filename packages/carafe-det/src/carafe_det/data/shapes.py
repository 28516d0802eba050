"""A small COCO-format instance segmentation dataset, generated: circles, triangles and squares with their
instance masks on textured backgrounds. The shapes' colours are random and overlap the backgrounds' colour
range, so a detector has to use shape (edges and corners), not colour.

    carafe-det-make-data --output data/shapes --train 400 --val 100 --size 128

writes data/shapes/annotations/instances_{train,val}.json and data/shapes/{train,val}/*.png, the same layout as
COCO, so both engines read it with their ordinary COCO path.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_util

CLASSES = ("circle", "triangle", "square")


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random colour field plus stripes: (size, size, 3) float in [0, 1]."""
    coarse = rng.uniform(0.0, 1.0, (4, 4, 3)).astype(np.float32)
    field = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC),
                       dtype=np.float32) / 255
    angle, period = rng.uniform(0, math.pi), rng.uniform(6, 20)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    stripes = 0.5 + 0.5 * np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
    image = 0.75 * field + 0.25 * stripes[..., None] * rng.uniform(0.3, 1.0, 3)
    return np.clip(image + rng.normal(0, 0.03, image.shape), 0, 1)


def _polygon(kind: str, cx: float, cy: float, radius: float, angle: float) -> list[tuple[float, float]]:
    corners = {"circle": 32, "triangle": 3, "square": 4}[kind]
    return [(cx + radius * math.cos(angle + 2 * math.pi * i / corners),
             cy + radius * math.sin(angle + 2 * math.pi * i / corners)) for i in range(corners)]


def _draw_image(rng: np.random.Generator, size: int, min_radius: float, max_radius: float, max_objects: int):
    """One image and its objects [(class index, polygon, mask)], objects apart from each other."""
    image = _texture(rng, size)
    objects, placed = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):  # rejection sampling: objects do not touch, so every polygon is its mask
            radius = rng.uniform(min_radius, max_radius)
            cx, cy = rng.uniform(radius + 1, size - radius - 1, 2)
            if all(math.hypot(cx - x, cy - y) > radius + r + 2 for x, y, r in placed):
                break
        else:
            continue
        placed.append((cx, cy, radius))
        kind = int(rng.integers(len(CLASSES)))
        polygon = _polygon(CLASSES[kind], cx, cy, radius, rng.uniform(0, 2 * math.pi))
        # rasterized by pycocotools, as every COCO reader and the evaluation will: image, box and mask agree
        flat = [round(v, 2) for point in polygon for v in point]
        mask = mask_util.decode(mask_util.frPyObjects([flat], size, size))[:, :, 0].astype(bool)
        if mask.sum() < 16:
            continue
        colour = rng.uniform(0, 1, 3)
        shade = np.clip(colour + rng.normal(0, 0.05, (size, size, 3)), 0, 1)
        image[mask] = shade[mask]
        objects.append((kind, flat, mask))
    return (image * 255).round().astype(np.uint8), objects


def write_split(root: Path, split: str, count: int, size: int, seed: int, min_radius: float = 8,
                max_radius: float = 22, max_objects: int = 4) -> Path:
    """Writes root/split/*.png and root/annotations/instances_<split>.json; returns the json's path."""
    rng = np.random.default_rng(seed)
    (root / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, count + 1):
        pixels, objects = _draw_image(rng, size, min_radius, max_radius, max_objects)
        file_name = f"{image_id:06d}.png"
        Image.fromarray(pixels).save(root / split / file_name)
        images.append({"id": image_id, "file_name": file_name, "height": size, "width": size})
        for kind, polygon, mask in objects:
            rows, cols = np.nonzero(mask)
            x0, y0, x1, y1 = cols.min(), rows.min(), cols.max() + 1, rows.max() + 1
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": kind + 1,
                "segmentation": [polygon],
                "bbox": [int(x0), int(y0), int(x1 - x0), int(y1 - y0)], "area": int(mask.sum()), "iscrowd": 0,
            })
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASSES)]
    path = root / "annotations" / f"instances_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def make_shapes_dataset(root: str | Path, train: int = 400, val: int = 100, size: int = 128, seed: int = 0) -> Path:
    """The train and val splits under root (val drawn from another seed); returns root."""
    root = Path(root)
    write_split(root, "train", train, size, seed)
    write_split(root, "val", val, size, seed + 1_000_003)
    return root

