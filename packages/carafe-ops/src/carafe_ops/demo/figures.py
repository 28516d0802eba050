"""The demo's pictures, drawn with matplotlib (Agg: no screen needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from matplotlib.colors import ListedColormap  # noqa: E402

from .scenes import CLASSES  # noqa: E402

LABEL_COLOURS = ListedColormap(["#202020", "#e6194b", "#3cb44b", "#4363d8"])


def _show(ax, image, title):
    ax.imshow(image.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def _show_labels(ax, labels, title):
    ax.imshow(labels.numpy(), cmap=LABEL_COLOURS, vmin=0, vmax=len(CLASSES) - 1, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


@torch.no_grad()
def segmentation_examples(models: dict, images: torch.Tensor, labels: torch.Tensor, path: Path) -> None:
    """Rows: validation scenes; columns: the image, the ground truth, each model's prediction."""
    cols = len(models) + 2
    fig, axes = plt.subplots(len(images), cols, figsize=(1.8 * cols, 1.9 * len(images)), squeeze=False)
    for row, (image, label) in enumerate(zip(images, labels)):
        _show(axes[row, 0], image, "image")
        _show_labels(axes[row, 1], label, "ground truth")
        for col, (name, model) in enumerate(models.items(), start=2):
            model.eval()
            _show_labels(axes[row, col], model(image[None]).argmax(1)[0], name)
    handles = [plt.Rectangle((0, 0), 1, 1, color=LABEL_COLOURS(i)) for i in range(len(CLASSES))]
    fig.legend(handles, CLASSES, loc="lower center", ncol=len(CLASSES), fontsize=8, frameon=False)
    fig.suptitle("Toy segmentation: the decoder's three x2 upsamplers are the only difference", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


@torch.no_grad()
def reassembly_kernels(model, image: torch.Tensor, labels: torch.Tensor, path: Path, points: int = 6) -> None:
    """The k_up x k_up kernels that the last CARAFEPack of the decoder predicts at class boundaries and at one
    pixel inside a region (cf. the paper's kernel visualisations): at a boundary the weight leans to the side
    that the output pixel belongs to."""
    pack = model.upsample[-1]
    captured = {}
    hook = pack.register_forward_pre_hook(lambda module, inputs: captured.setdefault("x", inputs[0]))
    model.eval()
    model(image[None])
    hook.remove()
    x = captured["x"]
    masks = pack.kernel_normalizer(pack.content_encoder(pack.channel_compressor(x)))[0]  # (k*k, H, W)
    k = pack.up_kernel
    boundary = torch.zeros_like(labels, dtype=torch.bool)
    boundary[1:-1, 1:-1] = (labels[1:-1, 1:-1] != labels[1:-1, 2:]) | (labels[1:-1, 1:-1] != labels[2:, 1:-1])
    candidates = boundary.nonzero().tolist()
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(candidates), generator=gen).tolist()
    chosen = []
    for idx in order:
        y, x_ = candidates[idx]
        if all(abs(y - cy) + abs(x_ - cx) > 12 for cy, cx in chosen):
            chosen.append((y, x_))
        if len(chosen) == points - 1:
            break
    interior = (~boundary).nonzero().tolist()
    chosen.append(tuple(interior[len(interior) // 2]))
    fig = plt.figure(figsize=(2.4 + 1.3 * len(chosen), 2.7))
    grid = fig.add_gridspec(1, len(chosen) + 2)
    ax = fig.add_subplot(grid[0, :2])
    _show(ax, image, "output positions")
    for i, (y, x_) in enumerate(chosen):
        ax.plot(x_, y, "o", markersize=6, markerfacecolor="none", markeredgecolor="yellow")
        ax.text(x_ + 2, y - 2, str(i + 1), color="yellow", fontsize=8, weight="bold")
    for i, (y, x_) in enumerate(chosen):
        kernel_ax = fig.add_subplot(grid[0, i + 2])
        kernel_ax.imshow(masks[:, y, x_].view(k, k).numpy(), cmap="viridis", vmin=0)
        kernel_ax.set_title(f"{i + 1}" + (" (inside)" if i == len(chosen) - 1 else " (boundary)"), fontsize=7)
        kernel_ax.set_xticks([])
        kernel_ax.set_yticks([])
    fig.suptitle("CARAFE reassembly kernels of the last upsampler (softmax weights over the 5x5 neighbourhood)",
                 fontsize=9)
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
    ax.set_ylabel("cross-entropy (moving average)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("Toy segmentation: training loss", fontsize=9)
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
