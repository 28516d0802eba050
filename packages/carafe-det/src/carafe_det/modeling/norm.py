"""The backbone BatchNorm of the authors' release: mmdetection (v1 and v2) trains its ResNet with
``norm_cfg=dict(type='BN', requires_grad=True)`` and ``norm_eval=True``: the statistics stay the ImageNet ones
(the layers are kept in eval mode) while the affine weight and bias are trained. detectron2's and torchvision's
FrozenBatchNorm2d freezes both."""

from __future__ import annotations

from torch import nn

BACKBONE_NORMS = ("FrozenBN", "FrozenStatsBN", "BN")


class FrozenStatsBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that always normalizes with its running statistics and never updates them (``train()`` keeps it
    in eval mode), with a trainable weight and bias."""

    def train(self, mode: bool = True) -> "FrozenStatsBatchNorm2d":
        return super().train(False)


def freeze_batchnorm_statistics(module: nn.Module) -> nn.Module:
    """Every plain nn.BatchNorm2d in module becomes a FrozenStatsBatchNorm2d (in place: same tensors); returns it."""
    for child in module.modules():
        if type(child) is nn.BatchNorm2d:
            child.__class__ = FrozenStatsBatchNorm2d
            child.eval()
    return module
