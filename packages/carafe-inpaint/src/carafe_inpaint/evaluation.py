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

from carafe_engine import all_reduce_sum, get_rank, get_world_size, progress_bar

from .data.mask_set import BIN_LABELS, COVERAGE_BINS, coverage_bin
from .modeling import complete

METRICS = ("l1_hole", "l1", "psnr", "ssim")


def image_metrics(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image metrics of (N, 3, H, W) tensors in [-1, 1] and (N, 1, H, W) masks; each value has shape (N,).
    l1_hole is NaN for an image without hole pixels."""
    out, ref = (t.detach().float().clamp(-1, 1).add(1).div(2).cpu() for t in (output, target))
    hole = mask.detach().float().cpu().expand_as(out)
    error = (out - ref).abs()
    l1_hole = (error * hole).sum(dim=(1, 2, 3)) / hole.sum(dim=(1, 2, 3))  # 0 / 0: NaN
    mse = (out - ref).pow(2).mean(dim=(1, 2, 3))
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    ssim = torch.tensor([structural_similarity(o.permute(1, 2, 0).double().numpy(), r.permute(1, 2, 0).double().numpy(),
                                               channel_axis=2, data_range=1.0) for o, r in zip(out, ref)])
    return {name: value.double() for name, value in zip(METRICS, (l1_hole, error.mean(dim=(1, 2, 3)), psnr, ssim))}


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
    parts = ("model", "masked_input")
    # [part, row, metric, (sum, count)]; row 0: every pair, row 1 + b: the pairs whose hole lies in bin b; NaN values
    # (l1_hole without hole pixels) are skipped
    sums = torch.zeros(len(parts), 1 + len(COVERAGE_BINS), len(METRICS), 2, dtype=torch.float64)
    for batch in progress_bar(loader, "evaluating"):
        image, mask = batch["image"].to(device), batch["mask"].to(device)
        bins = hole_bins(mask)
        rows = torch.stack([torch.ones_like(bins, dtype=torch.bool), *(bins == b for b in range(len(COVERAGE_BINS)))])
        completed = complete(generator(image, mask), image, mask)
        for part, output in enumerate((completed, image * (1 - mask))):
            for i, value in enumerate(image_metrics(output, image, mask).values()):
                selected = rows & torch.isfinite(value)
                sums[part, :, i, 0] += torch.where(selected, value, 0).sum(dim=1)
                sums[part, :, i, 1] += selected.sum(dim=1)
    generator.train(was_training)
    sums = all_reduce_sum(sums)  # every process's pairs: the means of a single-process evaluation
    means = [[dict(zip(METRICS, row)) for row in part] for part in (sums[..., 0] / sums[..., 1]).tolist()]
    counts = [round(n) for n in sums[0, 1:, METRICS.index("l1"), 1].tolist()]  # l1 is finite for every pair
    # an empty bin has its count only (no NaN means in eval.json and metrics.jsonl)
    bins = {label: {"pairs": n, **({part: means[p][1 + b] for p, part in enumerate(parts)} if n else {})}
            for b, (label, n) in enumerate(zip(BIN_LABELS, counts))}
    return {**{part: means[p][0] for p, part in enumerate(parts)}, "pairs": len(dataset), "bins": bins}


def format_metrics(metrics: dict[str, float]) -> str:
    return (f"PSNR {metrics['psnr']:.2f} dB  SSIM {metrics['ssim']:.4f}  L1 hole {metrics['l1_hole']:.4f}  "
            f"L1 {metrics['l1']:.4f}")


def format_bins(results: dict) -> str:
    """The per-bin part of the log line: 'per coverage bin (pairs): PSNR model/masked input 10-20% (9): 25.10/21.30,
    ...' (non-empty bins)."""
    cells = [f"{label} ({b['pairs']}): {b['model']['psnr']:.2f}/{b['masked_input']['psnr']:.2f}"
             for label, b in results["bins"].items() if b["pairs"]]
    return "per coverage bin (pairs): PSNR model/masked input " + ", ".join(cells)


__all__ = ["METRICS", "evaluate", "format_bins", "format_metrics", "hole_bins", "image_metrics"]
