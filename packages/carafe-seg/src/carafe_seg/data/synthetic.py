"""A small synthetic dataset written in the ADEChallengeData2016 layout, for tests, the demo and trying the
pipeline without ADE20K:

    ROOT/images/{training,validation}/synth_<split>_00000001.jpg
    ROOT/annotations/{training,validation}/synth_<split>_00000001.png   (uint8; 0 = other/ignored, 1..5 classes)
    ROOT/objectInfo150.txt                                             (the class names)

Scenes of various sizes and orientations: a smooth two-colour background (class 1) with discs, boxes, stripe
patches and triangles (classes 2-5) of jittered class colours, and now and then a patch of noise labelled 0
('other', which training and evaluation ignore). A tiny model learns it in minutes on a CPU.

    carafe-seg-make-data --output data/synthetic-ade --train 96 --val 24
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("background", "disc", "box", "stripes", "triangle")  # labels 1..5
# each shape class has a typical colour (RGB in [0, 1]) that every scene jitters, so colour helps but the
# geometry decides near look-alikes
CLASS_COLOURS = {2: (0.85, 0.25, 0.2), 3: (0.2, 0.7, 0.3), 4: (0.95, 0.85, 0.2), 5: (0.25, 0.35, 0.9)}
SUPERSAMPLE = 2  # anti-aliased images: drawn at 2x, averaged down; labels from one sample per cell


def _scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    fine_h, fine_w = height * SUPERSAMPLE, width * SUPERSAMPLE
    yy, xx = np.meshgrid((np.arange(fine_h) + 0.5) / fine_h * height, (np.arange(fine_w) + 0.5) / fine_w * width,
                         indexing="ij")
    c0, c1 = rng.uniform(0.3, 0.7, 3), rng.uniform(0.3, 0.7, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.clip((xx * np.cos(angle) + yy * np.sin(angle)) / max(height, width) + 0.5, 0, 1)[..., None]
    image = c0 + (c1 - c0) * ramp
    label = np.ones((fine_h, fine_w), np.uint8)
    scale = min(height, width)
    for _ in range(rng.integers(2, 6)):
        kind = int(rng.integers(2, 6))
        colour = np.clip(np.array(CLASS_COLOURS[kind]) + rng.normal(0, 0.08, 3), 0, 1)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        theta = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
        v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
        size = rng.uniform(0.12, 0.3) * scale
        if kind == 2:
            inside = u**2 + v**2 < size**2
        elif kind == 3:
            inside = (np.abs(u) < size) & (np.abs(v) < rng.uniform(0.5, 1.0) * size)
        elif kind == 4:
            period = rng.uniform(0.2, 0.35) * size
            inside = (np.abs(u) < size) & (np.abs(v) < size)
            dark = np.remainder(u, period) < period / 2
            colour = np.where(dark[..., None], colour * 0.35, colour)
        else:
            inside = (v > -size / 2) & (v < size) & (np.abs(u) < (size - v) / np.sqrt(3))
        image = np.where(inside[..., None], colour, image)
        label[inside] = kind
    if rng.random() < 0.3:  # an unlabelled patch of noise: 'other', ignored by the loss and the metrics
        cy, cx, size = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.1, 0.2) * scale
        inside = (np.abs(yy - cy) < size) & (np.abs(xx - cx) < size)
        image = np.where(inside[..., None], rng.uniform(0, 1, image.shape), image)
        label[inside] = 0
    image = image + rng.normal(0, 0.02, image.shape)
    image = image.reshape(height, SUPERSAMPLE, width, SUPERSAMPLE, 3).mean(axis=(1, 3))
    centre = SUPERSAMPLE // 2
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), label[centre::SUPERSAMPLE, centre::SUPERSAMPLE]


def make_synthetic_ade20k(root: str | Path, train: int = 96, val: int = 24, seed: int = 0, min_size: int = 64,
                          max_size: int = 128) -> Path:
    """Writes the dataset under root (returned); sizes (height and width) drawn from [min_size, max_size]."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count, prefix in (("training", train, "synth_train"), ("validation", val, "synth_val")):
        images, annotations = root / "images" / split, root / "annotations" / split
        images.mkdir(parents=True, exist_ok=True)
        annotations.mkdir(parents=True, exist_ok=True)
        for i in range(1, count + 1):
            height, width = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
            image, label = _scene(rng, height, width)
            Image.fromarray(image).save(images / f"{prefix}_{i:08d}.jpg", quality=95)
            Image.fromarray(label, mode="L").save(annotations / f"{prefix}_{i:08d}.png")
    lines = ["Idx\tRatio\tTrain\tVal\tName"] + [f"{i}\t0\t0\t0\t{name}" for i, name in enumerate(CLASSES, start=1)]
    (root / "objectInfo150.txt").write_text("\n".join(lines) + "\n")
    return root

