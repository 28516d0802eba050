"""Pictures: the sample grids written during training and the paper's Figure 4 layout (masked input, one column
per model, original; on a validation set one row per hole-coverage bin), drawn with matplotlib's Agg backend (no
screen needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .data.images import to_uint8, write_image  # noqa: E402
from .data.mask_set import BIN_LABELS, mask_bin  # noqa: E402


def masked_view(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The image with its hole shown in white, for display."""
    return image * (1 - mask) + mask


def image_grid(rows: list[list[torch.Tensor]], path: str | Path, gap: int = 2) -> None:
    """rows of (3, H, W) tensors in [-1, 1] -> one PNG, white gaps between the tiles."""
    tiles = [[to_uint8(t) for t in row] for row in rows]
    h, w = tiles[0][0].shape[:2]
    canvas = np.full((len(tiles) * (h + gap) - gap, max(map(len, tiles)) * (w + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = tile
    write_image(path, canvas)


def pairs_per_bin(pairs) -> list[tuple[int, str]]:
    """Figure 4's rows on validation pairs (data.ValidationPairs): for each hole-coverage bin b, one pair whose mask
    lies in b, of image b % num_images where it has one (so the rows show different photographs), and its label
    ('30-40% bin, 34% hole'). Bins without any pair are left out."""
    masks = [pairs.mask(p) for p in range(len(pairs))]
    rows = []
    for b, label in enumerate(BIN_LABELS):
        in_bin = [p for p, mask in enumerate(masks) if mask_bin(mask) == b]
        if in_bin:
            preferred = [p for p in in_bin if p // pairs.masks_per_image == b % pairs.num_images]
            pair = (preferred or in_bin)[0]
            rows.append((pair, f"{label} bin, {100 * np.count_nonzero(masks[pair]) / masks[pair].size:.1f}% hole"))
    return rows


def comparison_figure(images: list[torch.Tensor], masks: list[torch.Tensor], outputs: dict[str, list[torch.Tensor]],
                      path: str | Path, title: str | None = None, scores: dict[str, list[float]] | None = None,
                      row_labels: list[str] | None = None) -> None:
    """The paper's Figure 4: one row per image (lists of (3, H, W) and (1, H, W) tensors, or stacked ones); columns
    masked input, each model's completed image, original. scores: optional PSNR per model and row, shown under the
    model's tile; row_labels: optional text beside each row (e.g. its hole coverage)."""
    cols = len(outputs) + 2
    fig, axes = plt.subplots(len(images), cols, figsize=(2.2 * cols, 2.3 * len(images) + 0.3), squeeze=False)
    for row, (image, mask) in enumerate(zip(images, masks)):
        panels = [("masked input", masked_view(image, mask), None)]
        panels += [(name, results[row], scores[name][row] if scores else None) for name, results in outputs.items()]
        panels.append(("original", image, None))
        for ax, (name, tile, score) in zip(axes[row], panels):
            ax.imshow(to_uint8(tile), interpolation="nearest")
            ax.set(xticks=[], yticks=[])
            if row == 0:
                ax.set_title(name, fontsize=9)
            if row_labels and ax is axes[row][0]:
                ax.set_ylabel(row_labels[row], fontsize=8)
            if score is not None:
                ax.set_xlabel(f"{score:.2f} dB", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
