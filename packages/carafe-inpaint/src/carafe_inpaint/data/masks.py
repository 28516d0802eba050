"""DeepFill v2's training masks (Yu et al., "Free-Form Image Inpainting with Gated Convolution"): a random box united
with random brush strokes, as the official code trains (JiahuiYu/generative_inpainting, ``inpaint_model.py``:
``mask = logical_or(irregular_mask, regular_mask)``), with its parameters for 256x256 images.

The box (``inpaint_ops.random_bbox`` and ``bbox2mask``; inpaint.yml HEIGHT = WIDTH = 128, VERTICAL_MARGIN =
HORIZONTAL_MARGIN = 0, MAX_DELTA_HEIGHT = MAX_DELTA_WIDTH = 32):

- a 128x128 box whose top-left corner is uniform in [0, 256 - 128) on each axis (the official exclusive upper end);
- shrunk by s_h in [0, 16] at the top and the bottom and by s_w in [0, 16] at the left and the right: 96..128
  pixels a side, 14%-25% of the image.

The brush strokes (``inpaint_ops.brush_stroke_mask``):

- 1 to 3 strokes; each is a polyline of 4 to 11 segments starting at a uniformly random pixel;
- segment angles alternate between a (in [mean - dr, mean + dr]) and 2π - a, mean angle 2π/5, where the two ends
  of that interval are each drawn with an offset uniform in [0, 2π/15];
- segment length ~ N(r, (r // 2)^2) clipped to [0, 2r], r = sqrt(H^2 + W^2) / 8; vertices clipped to the image;
- stroke width uniform in [12, 40] pixels, the polyline drawn with that width and a disc at every vertex;
- a random left-right and a random top-bottom flip, each with probability 1/2.

Differences from the official code, on purpose: randomness comes from a seeded ``numpy.random.Generator`` that
the caller passes (the official code uses TensorFlow's and NumPy's global states), so every mask is reproducible
from its seed (the box is drawn first, then the strokes, from the same generator); the flips are applied (the
official code computes ``mask.transpose(...)`` and discards the result, so it never flips); and for sizes other
than 256x256 the box's lengths scale with their axis (H / 256, W / 256: the same fraction of the image) and the
stroke widths with the image diagonal like the segment length does (at 256x256 all are the official values).

Coverage (hole fraction of the image), measured over 2000 masks of seed 0 at 256x256: the union 31.0% +- 6.8%
(quantiles 5% / 25% / 50% / 75% / 95%: 21.0% / 25.9% / 30.2% / 35.5% / 43.3%; min 14.8%, max 53.7%); over 2000
draws of seed 1, the strokes alone 15.2% +- 8.1%, the box alone 19.1% +- 2.4%. At 64x64 the union covers
30.2% +- 6.7%. Per 10% bin: 10-20% 2.6%, 20-30% 46.2%, 30-40% 39.8%, 40-50% 11.0%, 50-60% 0.4% of the masks.

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
BOX_SIZE = 128                              # inpaint.yml HEIGHT, WIDTH (for IMG_SHAPES 256x256)
BOX_MARGIN = 0                              # inpaint.yml VERTICAL_MARGIN, HORIZONTAL_MARGIN
BOX_MAX_DELTA = 32                          # inpaint.yml MAX_DELTA_HEIGHT, MAX_DELTA_WIDTH


def random_box(height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, box height, box width) of the official box (see the module docstring): ``random_bbox``'s
    placement, its top in [margin, H - margin - BOX_SIZE) (the exclusive end kept: at 256x256 the box never reaches
    the last row or column), then ``bbox2mask``'s shrink; every length scaled with its axis."""
    _check_size("random_box", height, width)
    starts, extents = [], []
    for size in (height, width):                      # the official draws: top, left, then the two shrinks
        extent, margin = max(1, _scaled(BOX_SIZE, size)), _scaled(BOX_MARGIN, size)
        starts.append(int(rng.integers(margin, max(margin + 1, size - margin - extent))))
        extents.append(extent)
    shrinks = [int(rng.integers(0, _scaled(BOX_MAX_DELTA, size) // 2 + 1)) for size in (height, width)]
    return (starts[0] + shrinks[0], starts[1] + shrinks[1], extents[0] - 2 * shrinks[0], extents[1] - 2 * shrinks[1])


def box_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """The box alone (official ``bbox2mask`` of ``random_bbox``): (H, W), float32, 1 = hole."""
    top, left, box_height, box_width = random_box(height, width, rng)
    mask = np.zeros((height, width), np.float32)
    mask[top:top + box_height, left:left + box_width] = 1
    return mask


def brush_stroke_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """The brush strokes alone (official ``brush_stroke_mask``): (H, W), float32, 1 = hole."""
    _check_size("brush_stroke_mask", height, width)
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


def free_form_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """DeepFill v2's training mask: the union of a box and brush strokes (official ``inpaint_model.py``,
    ``logical_or(irregular_mask, regular_mask)``); the box is drawn first, as there. (H, W), float32, 1 = hole."""
    return np.maximum(box_mask(height, width, rng), brush_stroke_mask(height, width, rng))


def _check_size(name: str, height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"{name}: size must be positive, got {height}x{width}")


def _scaled(length: int, size: int) -> int:
    """A length of the official 256x256 settings at an image side of `size` pixels."""
    return round(length * size / REFERENCE_SIZE)


def seeded_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator for item `index` of the stream `seed`: each item is reproducible on its own, whatever
    was drawn before it."""
    return np.random.default_rng([int(seed), int(index)])


def seeded_mask(height: int, width: int, seed: int, index: int) -> np.ndarray:
    return free_form_mask(height, width, seeded_rng(seed, index))
