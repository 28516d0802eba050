"""Inpainting metrics on images in [0, 1] (from the [-1, 1] tensors), averaged over images:

- l1_hole: mean absolute error over the hole pixels (all channels) of the completed image y;
- l1: mean absolute error over the whole image;
- psnr: 10 log10(1 / MSE) over the whole image, in dB;
- ssim: scikit-image's structural_similarity (7x7 uniform window, data_range 1, averaged over the RGB channels).

`evaluate` runs a generator over a validation set and also scores the masked input itself (hole filled with the
value 0 of the [-1, 1] scale, i.e. mid-grey, as the generator receives it) as the floor a model must beat. Both are
reported over all pairs and per hole-coverage bin (10-20%, ..., 50-60% of the image, as inpainting papers report;
each pair's bin is computed from its mask, so any mask set can be scored per bin; pairs outside every bin count in
the overall means only). Every sum is all-reduced over the processes, so a distributed evaluation gives the means
of a single-process one.
"""

from __future__ import annotations

import torch
from skimage.metrics import structural_similarity
from torch.utils.data import DataLoader, Subset

from carafe_engine import all_reduce_mean, get_rank, get_world_size, progress_bar

from .data.mask_set import BIN_LABELS, COVERAGE_BINS, coverage_bin
from .modeling import complete

METRICS = ("l1_hole", "l1", "psnr", "ssim")


def image_metrics(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image metrics of (N, 3, H, W) tensors in [-1, 1] and (N, 1, H, W) masks; each value has shape (N,).
    l1_hole is NaN for an image without hole pixels."""
    out = output.detach().float().clamp(-1, 1).add(1).div(2).cpu()
    ref = target.detach().float().clamp(-1, 1).add(1).div(2).cpu()
    hole = mask.detach().float().cpu().expand_as(out)
    error = (out - ref).abs()
    hole_pixels = hole.sum(dim=(1, 2, 3))
    l1_hole = (error * hole).sum(dim=(1, 2, 3)) / hole_pixels
    l1_hole[hole_pixels == 0] = float("nan")
    mse = (out - ref).pow(2).mean(dim=(1, 2, 3))
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    ssim = torch.tensor([structural_similarity(o.permute(1, 2, 0).double().numpy(), r.permute(1, 2, 0).double().numpy(),
                                               channel_axis=2, data_range=1.0) for o, r in zip(out, ref)])
    return {"l1_hole": l1_hole.double(), "l1": error.mean(dim=(1, 2, 3)).double(), "psnr": psnr.double(),
            "ssim": ssim.double()}


class MetricSums:
    """Sums of per-image metrics (NaN l1_hole values skipped) over all images and per hole-coverage bin
    (COVERAGE_BINS), averaged over all processes by `means` / `bin_means` (one all-reduce of every sum)."""

    def __init__(self):
        # row 0: every image; row 1 + b: the images whose hole lies in bin b
        self.sums = torch.zeros(1 + len(COVERAGE_BINS), 2 * len(METRICS), dtype=torch.float64)
        self._reduced: torch.Tensor | None = None

    def add(self, values: dict[str, torch.Tensor], bins: torch.Tensor | None = None) -> None:
        """values: image_metrics of N images; bins: (N,) their coverage bins (-1: none), or None."""
        bins = torch.full((len(values["l1"]),), -1) if bins is None else bins.cpu()
        for row in range(self.sums.shape[0]):
            selected = torch.ones_like(bins, dtype=torch.bool) if row == 0 else bins == row - 1
            for i, name in enumerate(METRICS):
                value = values[name][selected]
                finite = torch.isfinite(value)
                self.sums[row, 2 * i] += value[finite].sum()
                self.sums[row, 2 * i + 1] += finite.sum()
        self._reduced = None

    def _row_means(self, device: torch.device, row: int) -> dict[str, float]:
        if self._reduced is None:
            # the mean over processes of (sum, count) pairs has the same ratio as their totals
            self._reduced = all_reduce_mean(self.sums.to(device)).cpu()
        sums = self._reduced[row]
        return {name: float(sums[2 * i] / sums[2 * i + 1]) if sums[2 * i + 1] > 0 else float("nan")
                for i, name in enumerate(METRICS)}

    def means(self, device: torch.device) -> dict[str, float]:
        """The means over every image (all processes)."""
        return self._row_means(device, 0)

    def bin_means(self, device: torch.device) -> dict[str, dict[str, float]]:
        """{bin label: the means over its images} (NaN for a bin without images)."""
        return {label: self._row_means(device, 1 + b) for b, label in enumerate(BIN_LABELS)}

    def bin_counts(self, device: torch.device) -> dict[str, int]:
        """{bin label: its number of images} (all processes)."""
        self._row_means(device, 0)
        column = 2 * METRICS.index("l1") + 1  # l1 is finite for every image
        return {label: round(float(self._reduced[1 + b, column]) * get_world_size())
                for b, label in enumerate(BIN_LABELS)}


def hole_bins(mask: torch.Tensor) -> torch.Tensor:
    """(N,) coverage bin of each (N, 1, H, W) mask (data.mask_set.coverage_bin; -1 outside every bin)."""
    holes = (mask.detach() > 0.5).flatten(1).sum(dim=1).tolist()
    return torch.tensor([coverage_bin(h, mask[0].numel()) for h in holes], dtype=torch.int64)


@torch.no_grad()
def evaluate(generator: torch.nn.Module, dataset, device: torch.device, batch_size: int = 32,
             num_workers: int = 0) -> dict:
    """{'model': metrics of the completed images, 'masked_input': metrics of the generator's input, 'pairs': the
    number of pairs, 'bins': {label: {'pairs', 'model', 'masked_input'}} per hole-coverage bin ('pairs' only for an
    empty bin)}, over the whole dataset (each process takes every world_size-th pair)."""
    shard = Subset(dataset, range(get_rank(), len(dataset), get_world_size()))
    loader = DataLoader(shard, batch_size=batch_size, num_workers=num_workers)
    was_training = generator.training
    generator.eval()
    sums = {"model": MetricSums(), "masked_input": MetricSums()}
    for batch in progress_bar(loader, "evaluating"):
        image, mask = batch["image"].to(device), batch["mask"].to(device)
        bins = hole_bins(mask)
        completed = complete(generator(image, mask), image, mask)
        sums["model"].add(image_metrics(completed, image, mask), bins)
        sums["masked_input"].add(image_metrics(image * (1 - mask), image, mask), bins)
    generator.train(was_training)
    per_bin = {part: s.bin_means(device) for part, s in sums.items()}
    counts = sums["model"].bin_counts(device)
    # an empty bin has its count only (no NaN means in eval.json and metrics.jsonl)
    return {**{part: s.means(device) for part, s in sums.items()}, "pairs": len(dataset),
            "bins": {label: {"pairs": counts[label], **({part: per_bin[part][label] for part in sums}
                                                        if counts[label] else {})}
                     for label in BIN_LABELS}}


def format_metrics(metrics: dict[str, float]) -> str:
    return (f"PSNR {metrics['psnr']:.2f} dB  SSIM {metrics['ssim']:.4f}  L1 hole {metrics['l1_hole']:.4f}  "
            f"L1 {metrics['l1']:.4f}")


def format_bins(results: dict) -> str:
    """The per-bin part of the log line: 'bins (pairs: model PSNR / masked input PSNR) 10-20% (9): 25.10/21.30 ...'."""
    cells = [f"{label} ({b['pairs']}): {b['model']['psnr']:.2f}/{b['masked_input']['psnr']:.2f}"
             for label, b in results["bins"].items() if b["pairs"]]
    return "per coverage bin (pairs): PSNR model/masked input " + ", ".join(cells)


__all__ = ["METRICS", "MetricSums", "evaluate", "format_bins", "format_metrics", "hole_bins", "image_metrics"]
