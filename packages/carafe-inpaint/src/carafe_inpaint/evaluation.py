"""Inpainting metrics on images in [0, 1] (from the [-1, 1] tensors), averaged over images:

- l1_hole: mean absolute error over the hole pixels (all channels) of the completed image y;
- l1: mean absolute error over the whole image;
- psnr: 10 log10(1 / MSE) over the whole image, in dB;
- ssim: scikit-image's structural_similarity (7x7 uniform window, data_range 1, averaged over the RGB channels).

`evaluate` runs a generator over a validation set and also scores the masked input itself (hole filled with the
value 0 of the [-1, 1] scale, i.e. mid-grey, as the generator receives it) as the floor a model must beat.
"""

from __future__ import annotations

import torch
from skimage.metrics import structural_similarity
from torch.utils.data import DataLoader, Subset

from carafe_engine import all_reduce_mean, get_rank, get_world_size, progress_bar

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
    """Sums of per-image metrics (NaN l1_hole values skipped), averaged over all processes by `means`."""

    def __init__(self):
        self.sums = torch.zeros(2 * len(METRICS), dtype=torch.float64)

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for i, name in enumerate(METRICS):
            finite = torch.isfinite(values[name])
            self.sums[2 * i] += values[name][finite].sum()
            self.sums[2 * i + 1] += finite.sum()

    def means(self, device: torch.device) -> dict[str, float]:
        # the mean over processes of (sum, count) pairs has the same ratio as their totals
        sums = all_reduce_mean(self.sums.to(device)).cpu()
        return {name: float(sums[2 * i] / sums[2 * i + 1]) if sums[2 * i + 1] > 0 else float("nan")
                for i, name in enumerate(METRICS)}


@torch.no_grad()
def evaluate(generator: torch.nn.Module, dataset, device: torch.device, batch_size: int = 32,
             num_workers: int = 0) -> dict[str, dict[str, float]]:
    """{'model': metrics of the completed images, 'masked_input': metrics of the generator's input}, over the
    whole dataset (each process takes every world_size-th pair)."""
    shard = Subset(dataset, range(get_rank(), len(dataset), get_world_size()))
    loader = DataLoader(shard, batch_size=batch_size, num_workers=num_workers)
    was_training = generator.training
    generator.eval()
    model_sums, input_sums = MetricSums(), MetricSums()
    for batch in progress_bar(loader, "evaluating"):
        image, mask = batch["image"].to(device), batch["mask"].to(device)
        completed = complete(generator(image, mask), image, mask)
        model_sums.add(image_metrics(completed, image, mask))
        input_sums.add(image_metrics(image * (1 - mask), image, mask))
    generator.train(was_training)
    return {"model": model_sums.means(device), "masked_input": input_sums.means(device), "pairs": len(dataset)}


def format_metrics(metrics: dict[str, float]) -> str:
    return (f"PSNR {metrics['psnr']:.2f} dB  SSIM {metrics['ssim']:.4f}  L1 hole {metrics['l1_hole']:.4f}  "
            f"L1 {metrics['l1']:.4f}")


__all__ = ["METRICS", "MetricSums", "evaluate", "format_metrics", "image_metrics"]
