"""Synchronized BatchNorm on every device.

The paper trains with BatchNorm statistics computed over all 16 images of a batch (2 per GPU on 8 GPUs). On
GPUs that is `torch.nn.SyncBatchNorm`. PyTorch does not run it on CPUs: its forward raises "SyncBatchNorm
expected input tensor to be on GPU ..." and DistributedDataParallel refuses CPU modules that contain it
("SyncBatchNorm layers only work with GPU modules"). Multi-process CPU training (gloo) - the CI's stand-in for a
multi-GPU run - therefore gets CPUSyncBatchNorm: the same statistics, synchronized with differentiable
all-reduces (torch.distributed.nn), which gloo supports. `convert_sync_batchnorm` picks one or the other.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class CPUSyncBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are the mean and (biased) variance over every process's batch - two
    all-reduces of per-channel sums - with gradients flowing back to every process through them, as in
    nn.SyncBatchNorm. Outside training, or in a single process, it is plain BatchNorm."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        syncing = self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not syncing:
            return super().forward(input)
        self._check_input_dim(input)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as in nn.BatchNorm
                momentum = 1.0 / float(self.num_batches_tracked)
        dims = [0] + list(range(2, input.dim()))
        count = torch.tensor([input.numel() / input.shape[1]], dtype=input.dtype, device=input.device)
        # two passes (the sum, then the sum of squared deviations) keep the variance accurate in float32
        totals = dist_fn.all_reduce(torch.cat([input.sum(dims), count]))
        n = totals[-1]
        mean = totals[:-1] / n
        shape = [1, -1] + [1] * (input.dim() - 2)
        centred = input - mean.view(shape)
        var = dist_fn.all_reduce(centred.pow(2).sum(dims)) / n
        output = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                unbiased = var.detach() * n / (n - 1).clamp(min=1)
                self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        return output


def _to_cpu_sync(module: nn.Module) -> nn.Module:
    if isinstance(module, _BatchNorm) and not isinstance(module, CPUSyncBatchNorm):
        converted = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                     module.track_running_stats)
        converted.load_state_dict(module.state_dict())
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        module.add_module(name, _to_cpu_sync(child))
    return module


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm*d of model becomes synchronized across the default process group: nn.SyncBatchNorm on
    GPUs, CPUSyncBatchNorm on the CPU. Returns the model (call before creating the optimizer)."""
    if device.type == "cpu":
        return _to_cpu_sync(model)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)
