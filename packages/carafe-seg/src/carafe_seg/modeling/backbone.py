"""Backbones that return four feature maps at strides 4, 8, 16 and 32 (C2..C5), as UperNet's decoder expects.

- `resnet50`: torchvision's ResNet-50 (the paper's backbone), ImageNet weights read from a path the user gives.
- `tiny`: a small plain convnet for CPU demos and tests, trained from scratch.
"""

from __future__ import annotations

import torchvision
from carafe_engine import CheckpointError, load_pretrained
from torch import Tensor, nn

# ImageNet weights that cannot be loaded (file, contents or shapes); carafe-engine's error
BackboneWeightsError = CheckpointError


class ResNetBackbone(nn.Module):
    """torchvision's ResNet without its pooling and classifier: stem (conv 7x7/2, max-pool /2), then layer1..4."""

    def __init__(self, resnet: torchvision.models.ResNet):
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.out_channels = [self._width(layer) for layer in (self.layer1, self.layer2, self.layer3, self.layer4)]

    @staticmethod
    def _width(layer: nn.Sequential) -> int:
        last = layer[-1]
        return (last.bn3 if hasattr(last, "bn3") else last.bn2).num_features

    def forward(self, x: Tensor) -> list[Tensor]:
        c2 = self.layer1(self.stem(x))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return [c2, c3, c4, self.layer4(c4)]


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TinyBackbone(nn.Module):
    """Four stages of two 3x3 conv-BN-ReLU each, the first of each strided, after a stride-2 stem: strides 4, 8,
    16, 32 like ResNet's C2..C5, a few hundred thousand parameters."""

    def __init__(self, widths=(16, 32, 64, 128)):
        super().__init__()
        self.stem = conv_bn_relu(3, widths[0], stride=2)
        stages, previous = [], widths[0]
        for width in widths:
            stages.append(nn.Sequential(conv_bn_relu(previous, width, stride=2), conv_bn_relu(width, width)))
            previous = width
        self.stages = nn.ModuleList(stages)
        self.out_channels = list(widths)
        # torchvision ResNet's init; PyTorch's default conv init shrinks activations ~8x per stage here, so that an
        # untrained model's C5 is ~1e-4 and the decoder (CARAFE's kernel prediction included) sees almost nothing
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def build_backbone(cfg) -> nn.Module:
    """cfg: the MODEL.BACKBONE section."""
    if cfg.NAME == "tiny":
        if cfg.WEIGHTS:
            raise BackboneWeightsError("MODEL.BACKBONE.WEIGHTS: the 'tiny' backbone is trained from scratch; leave it empty")
        return TinyBackbone(cfg.TINY_WIDTHS)
    if cfg.NAME == "resnet50":
        resnet = torchvision.models.resnet50(weights=None)
        if cfg.WEIGHTS:
            load_pretrained(resnet, cfg.WEIGHTS)
        return ResNetBackbone(resnet)
    raise ValueError(f"MODEL.BACKBONE.NAME: unknown backbone {cfg.NAME!r}")
