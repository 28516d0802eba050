"""Synchronized BatchNorm on every device.

The paper trains with BatchNorm statistics computed over all 16 images of a batch (2 per GPU on 8 GPUs).
`torch.nn.SyncBatchNorm` does that on GPUs, but PyTorch refuses CPU tensors in it ("SyncBatchNorm expected input
tensor to be on GPU ..."), so multi-process CPU training (gloo) - the CI's stand-in for a multi-GPU run - would stop
at the first BatchNorm. `convert_sync_batchnorm` therefore converts with `nn.SyncBatchNorm.convert_sync_batchnorm`
and, for models on the CPU, gives the converted layers a forward that synchronizes the statistics with
differentiable all-reduces (torch.distributed.nn), which gloo supports. On CUDA nothing changes: PyTorch's kernels
run.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import Tensor, nn


class CPUSyncBatchNorm(nn.SyncBatchNorm):
    """nn.SyncBatchNorm whose training forward also works on CPU tensors: the batch mean and the (biased)
    variance are computed over every process's batch - two all-reduces of per-channel sums - and their gradients
    flow back to every process (the all-reduces are differentiable), as in PyTorch's SyncBatchNorm."""

    def forward(self, input: Tensor) -> Tensor:
        syncing = self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not syncing or input.device.type != "cpu":
            return super().forward(input)
        self._check_input_dim(input)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as in nn.BatchNorm
                momentum = 1.0 / float(self.num_batches_tracked)
        group = self.process_group or dist.group.WORLD
        dims = [0] + list(range(2, input.dim()))
        count = torch.tensor([input.numel() / input.shape[1]], dtype=input.dtype)
        # two passes (sum, then the sum of squared deviations) keep the variance accurate in float32
        totals = dist_fn.all_reduce(torch.cat([input.sum(dims), count]), group=group)
        n = totals[-1]
        mean = totals[:-1] / n
        shape = [1, -1] + [1] * (input.dim() - 2)
        centred = input - mean.view(shape)
        var = dist_fn.all_reduce(centred.pow(2).sum(dims), group=group) / n
        output = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                unbiased = var.detach() * n / (n - 1).clamp(min=1)
                self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        return output


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm*d of model becomes synchronized across the default process group (returns the model)."""
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if device.type == "cpu":
        for module in model.modules():
            if type(module) is nn.SyncBatchNorm:
                module.__class__ = CPUSyncBatchNorm
    return model
