"""The demo's pictures, drawn with matplotlib (Agg: no screen needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from .upsampling_task import psnr  # noqa: E402


def _show(ax, image, title):
    ax.imshow(image.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


@torch.no_grad()
def upsampling_examples(models: dict, images: torch.Tensor, path: Path) -> None:
    """Rows: validation scenes; columns: the input, each model's x2 output (with PSNR), the ground truth."""
    low = F.avg_pool2d(images, 2)
    cols = len(models) + 2
    fig, axes = plt.subplots(len(images), cols, figsize=(1.9 * cols, 1.9 * len(images)), squeeze=False)
    for row, (image, lr) in enumerate(zip(images, low)):
        _show(axes[row, 0], F.interpolate(lr[None], scale_factor=2)[0], "input (x1/2)")
        for col, (name, model) in enumerate(models.items(), start=1):
            out = model(lr[None])[0]
            _show(axes[row, col], out, f"{name}  {psnr(out, image):.1f} dB")
        _show(axes[row, -1], image, "ground truth")
    fig.suptitle("Learned x2 upsampling: the upsampler is the only difference between the models", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@torch.no_grad()
def reassembly_kernels(model, image: torch.Tensor, path: Path, points: int = 6) -> None:
    """The k_up x k_up kernels CARAFEPack predicts at edge pixels and at a flat pixel (cf. the paper's kernel
    visualisations): at edges the weight moves to the side of the edge the output pixel belongs to."""
    pack = model.upsample
    feats = model.stem(F.avg_pool2d(image[None], 2))
    masks = pack.kernel_normalizer(pack.content_encoder(pack.channel_compressor(feats)))[0]  # (k*k, H, W)
    k = pack.up_kernel
    gray = image.mean(0)
    edges = (gray[1:-1, 2:] - gray[1:-1, :-2]).abs() + (gray[2:, 1:-1] - gray[:-2, 1:-1]).abs()
    order = edges.flatten().argsort(descending=True)
    chosen = []
    for flat in order.tolist():
        y, x = divmod(flat, edges.shape[1])
        y, x = y + 1, x + 1
        if all(abs(y - cy) + abs(x - cx) > 10 for cy, cx in chosen):
            chosen.append((y, x))
        if len(chosen) == points - 1:
            break
    flat_idx = edges.flatten().argmin().item()
    chosen.append((flat_idx // edges.shape[1] + 1, flat_idx % edges.shape[1] + 1))
    fig = plt.figure(figsize=(2.2 + 1.3 * points, 2.6))
    grid = fig.add_gridspec(1, points + 2)
    ax = fig.add_subplot(grid[0, :2])
    _show(ax, image, "output positions")
    for i, (y, x) in enumerate(chosen):
        ax.plot(x, y, "o", markersize=6, markerfacecolor="none", markeredgecolor="red")
        ax.text(x + 2, y - 2, str(i + 1), color="red", fontsize=8, weight="bold")
    for i, (y, x) in enumerate(chosen):
        kernel_ax = fig.add_subplot(grid[0, i + 2])
        kernel_ax.imshow(masks[:, y, x].view(k, k).numpy(), cmap="viridis", vmin=0)
        kernel_ax.set_title(f"{i + 1}" + (" (flat)" if i == len(chosen) - 1 else ""), fontsize=8)
        kernel_ax.set_xticks([])
        kernel_ax.set_yticks([])
    fig.suptitle("CARAFE reassembly kernels (softmax weights over the 5x5 source neighbourhood)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def training_curves(losses: dict[str, list[float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, values in losses.items():
        t = torch.tensor(values)
        window = max(1, len(values) // 20)
        smooth = F.avg_pool1d(t[None, None], window, stride=1)[0, 0] if window > 1 else t
        ax.plot(range(window - 1, len(values)), smooth.numpy(), label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("L1 loss (moving average)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("Toy x2 upsampling: training loss", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def benchmark_bars(bench: dict, path: Path) -> None:
    rows = [r for r in bench["results"] if r["dtype"] == "float32"]
    labels = [f"{r['method']}\n{r['pass']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(rows)), 3.6))
    ax.bar(range(len(rows)), [r["ms"] for r in rows], color=["C1" if r["method"] == "carafe" else "C0" for r in rows])
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=6, rotation=60, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("ms (median)")
    wl = rows[0]["workload"]
    ax.set_title(f"{bench['device']}: features ({wl['n']}, {wl['c']}, {wl['h']}, {wl['w']}), k_up {wl['k']}, "
                 f"sigma {wl['s']}, float32", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
