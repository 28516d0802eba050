"""Colour-coded label maps and the paper's Figure 3 layout (input, ground truth, baseline, CARAFE), drawn with
matplotlib's Agg backend (no screen needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def palette(num_classes: int = 150) -> np.ndarray:
    """(num_classes + 1, 3) uint8 colours: label 0 ('other') black, then well-separated colours (the PASCAL VOC
    bit-interleaving scheme: the bits of the label index spread over the high bits of R, G and B)."""
    labels, colours = np.arange(num_classes + 1)[:, None], np.zeros((num_classes + 1, 3), np.int64)
    for i in range(8):  # bits 3i, 3i + 1, 3i + 2 of the label become bit 7 - i of R, G and B
        colours |= ((labels >> (3 * i + np.arange(3))) & 1) << (7 - i)
    return colours.astype(np.uint8)


def colorize(labels: np.ndarray, num_classes: int = 150) -> np.ndarray:
    """(H, W) labels 0..num_classes -> (H, W, 3) uint8 RGB."""
    return palette(num_classes)[np.clip(labels, 0, num_classes)]


def comparison_figure(rows: list[dict], columns: list[str], path: str | Path, num_classes: int = 150,
                      names: list[str] | None = None) -> Path:
    """One row per image; rows[i] maps a column name to an (H, W, 3) uint8 image or an (H, W) label map (missing
    columns stay blank). columns: their order, e.g. ['input', 'ground truth', 'baseline', 'CARAFE']. names: the
    names of classes 1..num_classes, for a legend of the classes shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.6 * len(columns), 2.2 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for c, column in enumerate(columns):
            ax = axes[r, c]
            ax.axis("off")
            if r == 0:
                ax.set_title(column, fontsize=10)
            picture = row.get(column)
            if picture is not None:
                ax.imshow(picture if picture.ndim == 3 else colorize(picture, num_classes), interpolation="nearest")
    bottom = 0.0
    if names:
        shown = sorted({int(v) for row in rows for p in row.values() if p is not None and p.ndim == 2
                        for v in np.unique(p) if 0 < v <= num_classes})
        colours = palette(num_classes) / 255
        handles = [plt.Rectangle((0, 0), 1, 1, color=colours[label]) for label in shown]
        fig.legend(handles, [names[label - 1] for label in shown], loc="lower center", ncol=min(len(shown), 6),
                   fontsize=8, frameon=False)
        bottom = 0.03 * (1 + (len(shown) - 1) // 6) * 4 / max(len(rows), 1)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
