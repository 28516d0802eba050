"""What CARAFE does in the FPN (the paper's Figure 1): for chosen locations of an FPN level, the units of the
coarser level that the top-down CARAFE reassembles into each of them, with their weights.

The x2 CARAFE that makes level L's top-down map reads the level above it (stride 2s) and writes level L (stride
s). Output unit (oy, ox) of level L is sum_{dy,dx} w[dy,dx] * input(oy//2 + dy, ox//2 + dx): its k_up x k_up
kernel w, predicted from the content, says how much each input unit counts. `reassembled_units` returns those
units as boxes in image pixels with their weights; `reassembly_figure` draws them (red, by weight) around the
output unit (green), on the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from carafe_ops import CARAFEPack  # noqa: E402
from torch import Tensor  # noqa: E402

from .inference import TorchvisionPredictor, image_tensor  # noqa: E402
from .modeling import CARAFEFPN  # noqa: E402


@dataclass
class Reassembly:
    """The kernels of one top-down CARAFE: weights (k_up*k_up, H_out, W_out) over input units, and the strides of
    its input and output grids in pixels of the network input."""

    weights: Tensor
    up_kernel: int
    input_stride: int
    output_stride: int
    input_size: tuple[int, int]


@torch.no_grad()
def top_down_kernels(fpn: CARAFEFPN, features: list[Tensor], level: int, level_strides: list[int]) -> Reassembly:
    """Runs the FPN on one image's backbone features and returns the kernels of the CARAFE that upsamples into
    `level` (0 = the finest). level_strides: the stride of each pathway level in input pixels."""
    if fpn.upsample != "carafe":
        raise ValueError("the FPN upsamples by nearest neighbour: every output unit copies one input unit (weight 1); "
                         "there are no CARAFE kernels to show")
    if not 0 <= level < len(fpn.upsample_modules):
        raise ValueError(f"level must be in 0..{len(fpn.upsample_modules) - 1} (the levels a CARAFE upsamples "
                         f"into), got {level}")
    pack: CARAFEPack = fpn.upsample_modules[level]
    captured = {}
    hook = pack.register_forward_pre_hook(lambda module, inputs: captured.setdefault("x", inputs[0]))
    try:
        fpn(features)
    finally:
        hook.remove()
    x = captured["x"]
    masks = pack.kernel_normalizer(pack.content_encoder(pack.channel_compressor(x)))  # (1, G*k*k, 2H, 2W)
    k2 = pack.up_kernel ** 2
    weights = masks[0].view(pack.up_group, k2, *masks.shape[-2:]).mean(0)  # groups averaged (G = 1 in the paper)
    return Reassembly(weights, pack.up_kernel, level_strides[level + 1], level_strides[level], tuple(x.shape[-2:]))


def reassembled_units(reassembly: Reassembly, oy: int, ox: int, scale: float = 1.0):
    """The input units reassembled into output unit (oy, ox): [(x0, y0, size, weight)] in image pixels (network
    input pixels divided by scale), taps outside the input left out (they read zero), and the output unit's
    (x0, y0, size)."""
    k, r = reassembly.up_kernel, reassembly.up_kernel // 2
    s_in, s_out = reassembly.input_stride / scale, reassembly.output_stride / scale
    height, width = reassembly.input_size
    units = []
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            iy, ix = oy // 2 + dy, ox // 2 + dx
            if 0 <= iy < height and 0 <= ix < width:
                weight = float(reassembly.weights[(dy + r) * k + (dx + r), oy, ox])
                units.append((ix * s_in, iy * s_in, s_in, weight))
    return units, (ox * s_out, oy * s_out, s_out)


def reassembly_figure(image: np.ndarray, reassembly: Reassembly, points: list[tuple[float, float]], path,
                      scale: float = 1.0, title: str = "") -> Path:
    """image (H, W, 3) uint8; points (x, y) in image pixels. First panel: the example locations; then one panel
    per location: reassembled units in red (opacity = weight / the kernel's largest weight), the reassembly
    centre in green."""
    s_out = reassembly.output_stride / scale
    fig, axes = plt.subplots(1, len(points) + 1, figsize=(2.6 * (len(points) + 1), 3.0), squeeze=False)
    axes = axes[0]
    axes[0].imshow(image)
    axes[0].scatter([p[0] for p in points], [p[1] for p in points], c="yellow", s=30, edgecolors="black")
    axes[0].set_title("example locations", fontsize=8)
    for ax, (x, y) in zip(axes[1:], points):
        oy = min(int(y // s_out), reassembly.weights.shape[1] - 1)
        ox = min(int(x // s_out), reassembly.weights.shape[2] - 1)
        units, (cx, cy, csize) = reassembled_units(reassembly, oy, ox, scale)
        top = max(w for *_, w in units)
        ax.imshow(image)
        for ux, uy, size, weight in units:
            ax.add_patch(plt.Rectangle((ux, uy), size, size, facecolor="red", alpha=0.85 * weight / top,
                                       edgecolor="darkred", linewidth=0.3))
        ax.add_patch(plt.Rectangle((cx, cy), csize, csize, facecolor="lime", edgecolor="darkgreen", linewidth=0.8))
        ax.set_title(f"({x:.0f}, {y:.0f}): max weight {top:.2f}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", color="yellow", markeredgecolor="black", linestyle=""),
               plt.Rectangle((0, 0), 1, 1, color="lime"), plt.Rectangle((0, 0), 1, 1, color="red")]
    fig.legend(handles, ["example locations", "reassembly centre", "reassembled units"], loc="lower center",
               ncol=3, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 0.95 if title else 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


@torch.no_grad()
def model_reassembly(predictor: TorchvisionPredictor, image: np.ndarray, level: int):
    """The kernels of the CARAFE upsampling into FPN `level` for this image, and the network input's scale."""
    model = predictor.model
    images, _ = model.transform([image_tensor(image, predictor.device)])
    scale = images.image_sizes[0][0] / image.shape[0]
    features = list(model.backbone.body(images.tensors).values())
    strides = [images.tensors.shape[-2] // f.shape[-2] for f in features]
    while len(strides) < len(model.backbone.fpn.lateral_convs):
        strides.append(strides[-1] * 2)
    return top_down_kernels(model.backbone.fpn, features, level, strides), scale


def default_points(predictor: TorchvisionPredictor, image: np.ndarray, count: int = 3) -> list[tuple[float, float]]:
    """Centre and left-edge midpoint of the top `count` detections (an object's inside and its boundary)."""
    detections = predictor(image)
    points = []
    for x0, y0, x1, y1 in detections.boxes[:count]:
        points += [((x0 + x1) / 2, (y0 + y1) / 2), (x0, (y0 + y1) / 2)]
    return points or [(image.shape[1] / 2, image.shape[0] / 2)]
