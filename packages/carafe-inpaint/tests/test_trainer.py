"""Pieces of the training step: masked means, the region-restricted patch loss, and the recomputed BatchNorm
statistics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from carafe_inpaint.engine import masked_mean, patch_loss, recompute_batchnorm_statistics


def test_masked_mean_and_patch_loss_by_hand():
    values = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]).expand(1, 3, 2, 2)
    weights = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert masked_mean(values, weights).item() == pytest.approx(2.5)      # (1 + 4) / 2 in every channel
    assert masked_mean(values, torch.zeros_like(weights)).item() == 0.0   # no selected element: 0, not NaN
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 5.0]]]])
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :4] = 1  # the hole covers the top-left patch only
    assert patch_loss(logits, True, mask).item() == pytest.approx(math.log(2))   # BCE(0, real)
    mask[..., 4:, 4:] = 1  # and the bottom-right one
    expected = (math.log(2) + math.log1p(math.exp(5.0))) / 2                     # BCE(0, fake), BCE(5, fake)
    assert patch_loss(logits, False, mask).item() == pytest.approx(expected)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm2d(2, momentum=0.3)

    def forward(self, image, mask):
        return self.norm(image * (1 - mask))


def test_batchnorm_statistics_are_the_average_over_the_batches():
    model = TwoInputs().eval()
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(4, 2, 3, 3, generator=gen) * (i + 1) + i, torch.zeros(4, 1, 3, 3)) for i in range(3)]
    recompute_batchnorm_statistics(model, batches)
    means = torch.stack([image.mean(dim=(0, 2, 3)) for image, _ in batches]).mean(0)
    variances = torch.stack([image.transpose(0, 1).reshape(2, -1).var(dim=1) for image, _ in batches]).mean(0)
    assert torch.allclose(model.norm.running_mean, means, atol=1e-6)
    assert torch.allclose(model.norm.running_var, variances, atol=1e-5)
    assert model.norm.momentum == 0.3 and not model.training
    # the previous statistics do not matter: the same batches give the same result
    model.norm.running_mean.fill_(100.0)
    recompute_batchnorm_statistics(model, batches)
    assert torch.allclose(model.norm.running_mean, means, atol=1e-6)
