"""Pictures of detections (the paper's Figure 2: baseline and CARAFE side by side) drawn with matplotlib (Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .inference import Detections  # noqa: E402

PALETTE = plt.get_cmap("tab10")


def overlay_masks(image: np.ndarray, detections: Detections, alpha: float = 0.45) -> np.ndarray:
    """The image with each instance mask tinted in its class colour."""
    picture = image.astype(np.float32) / 255
    if detections.masks is not None:
        for i, mask in enumerate(detections.masks):
            colour = np.asarray(PALETTE(i % 10)[:3], dtype=np.float32)
            picture[mask] = (1 - alpha) * picture[mask] + alpha * colour
    return picture


def draw_detections(ax, image: np.ndarray, detections: Detections, title: str | None = None) -> None:
    """Masks, boxes and 'class score' labels on one axis."""
    ax.imshow(overlay_masks(image, detections), interpolation="nearest")
    for i, (box, score, name) in enumerate(zip(detections.boxes, detections.scores, detections.classes)):
        colour = PALETTE(i % 10)
        x0, y0, x1, y1 = box
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.5))
        ax.text(x0, y0, f"{name} {score:.2f}", fontsize=7, color="white", va="bottom",
                bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "edgecolor": "none"})
    if title:
        ax.set_title(title, fontsize=9)
    ax.axis("off")


def save_detections(rows: list[tuple[np.ndarray, list[tuple[str, Detections]]]], path: str | Path) -> Path:
    """One row per image, one panel per model, left to right; with two models, a dashed line between them as in
    the paper's Figure 2 (baseline left of it, CARAFE right)."""
    columns = len(rows[0][1])
    height, width = rows[0][0].shape[:2]
    scale = 5.0 / max(height, width)
    fig, axes = plt.subplots(len(rows), columns, squeeze=False,
                             figsize=(width * scale * columns + 0.2, (height * scale + 0.4) * len(rows)))
    for row, (image, panels) in zip(axes, rows):
        for ax, (title, detections) in zip(row, panels):
            draw_detections(ax, image, detections, title)
    fig.tight_layout()
    if columns == 2:
        x = (axes[0][0].get_position().x1 + axes[0][1].get_position().x0) / 2
        fig.add_artist(plt.Line2D([x, x], [0.01, 0.99], transform=fig.transFigure, linestyle="--", color="black",
                                  linewidth=1.2))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
