"""Free-form masks by the brush-stroke algorithm of Yu et al. (DeepFill v2, "Free-Form Image Inpainting with Gated
Convolution"), with the parameters of the official generator (JiahuiYu/generative_inpainting,
``inpaint_ops.brush_stroke_mask``) for 256x256 images:

- 1 to 3 strokes; each is a polyline of 4 to 11 segments starting at a uniformly random pixel;
- segment angles alternate between a (in [mean - dr, mean + dr]) and 2π - a, mean angle 2π/5, where the two ends
  of that interval are each drawn with an offset uniform in [0, 2π/15];
- segment length ~ N(r, (r // 2)^2) clipped to [0, 2r], r = sqrt(H^2 + W^2) / 8; vertices clipped to the image;
- stroke width uniform in [12, 40] pixels, the polyline drawn with that width and a disc at every vertex;
- a random left-right and a random top-bottom flip, each with probability 1/2.

Differences from the official code, on purpose: randomness comes from a seeded ``numpy.random.Generator`` that
the caller passes (the official code uses the global NumPy state), so every mask is reproducible from its seed;
the flips are applied (the official code computes ``mask.transpose(...)`` and discards the result, so it never
flips); and for sizes other than 256x256 the widths scale with the image diagonal like the segment length does
(at 256x256 they are the official 12..40 pixels).

Masks are float32 arrays of shape (H, W) with 1 in the hole (M in y = (1 - M) ⊙ x + M ⊙ ŷ) and 0 elsewhere.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

MIN_STROKES, MAX_STROKES = 1, 3
MIN_VERTICES, MAX_VERTICES = 4, 11          # the official randint(4, 12) excludes 12
MEAN_ANGLE = 2 * math.pi / 5
ANGLE_RANGE = 2 * math.pi / 15
MIN_WIDTH, MAX_WIDTH = 12, 40               # pixels at the reference size
REFERENCE_SIZE = 256


def free_form_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """One free-form mask (H, W), float32, 1 = hole."""
    if height < 1 or width < 1:
        raise ValueError(f"free_form_mask: size must be positive, got {height}x{width}")
    diagonal = math.sqrt(height * height + width * width)
    average_radius = diagonal / 8
    width_scale = diagonal / (REFERENCE_SIZE * math.sqrt(2))
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(MIN_STROKES, MAX_STROKES + 1)):
        num_vertices = int(rng.integers(MIN_VERTICES, MAX_VERTICES + 1))
        angle_min = MEAN_ANGLE - rng.uniform(0, ANGLE_RANGE)
        angle_max = MEAN_ANGLE + rng.uniform(0, ANGLE_RANGE)
        angles = [2 * math.pi - rng.uniform(angle_min, angle_max) if i % 2 == 0 else rng.uniform(angle_min, angle_max)
                  for i in range(num_vertices)]
        vertices = [(int(rng.integers(0, width)), int(rng.integers(0, height)))]
        for angle in angles:
            # the official scale is average_radius // 2 (floor of a float), kept for the same length statistics
            length = float(np.clip(rng.normal(average_radius, average_radius // 2), 0, 2 * average_radius))
            x = float(np.clip(vertices[-1][0] + length * math.cos(angle), 0, width))
            y = float(np.clip(vertices[-1][1] + length * math.sin(angle), 0, height))
            vertices.append((int(x), int(y)))
        stroke = max(1, int(rng.uniform(MIN_WIDTH, MAX_WIDTH) * width_scale))
        draw.line(vertices, fill=1, width=stroke)
        half = stroke // 2
        for x, y in vertices:
            draw.ellipse((x - half, y - half, x + half, y + half), fill=1)
    mask = np.array(canvas, dtype=np.float32)
    if rng.normal() > 0:
        mask = mask[:, ::-1]
    if rng.normal() > 0:
        mask = mask[::-1, :]
    return np.ascontiguousarray(mask)


def seeded_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator for item `index` of the stream `seed`: each item is reproducible on its own, whatever
    was drawn before it."""
    return np.random.default_rng([int(seed), int(index)])


def seeded_mask(height: int, width: int, seed: int, index: int) -> np.ndarray:
    return free_form_mask(height, width, seeded_rng(seed, index))
