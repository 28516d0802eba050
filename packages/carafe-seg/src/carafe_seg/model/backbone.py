"""Backbones that return four feature maps at strides 4, 8, 16 and 32 (C2..C5), as UperNet's decoder expects.

- `resnet50`: torchvision's ResNet-50 (the paper's backbone), ImageNet weights read from a path the user gives.
- `tiny`: a small plain convnet for CPU demos and tests, trained from scratch.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn


class BackboneWeightsError(ValueError):
    """ImageNet weights that are missing or do not fit the backbone."""


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


def load_imagenet_weights(resnet: torchvision.models.ResNet, path: str | Path) -> None:
    """Loads a torchvision ImageNet state dict (as saved by torchvision, e.g. resnet50-0676ba61.pth; a dict with
    'state_dict' or 'model' holding one also works). Every backbone tensor must be there with its shape; the
    classifier (fc.*) is not used."""
    path = Path(path)
    if not path.is_file():
        raise BackboneWeightsError(f"MODEL.BACKBONE.WEIGHTS: file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means it is not a state dict
        raise BackboneWeightsError(f"MODEL.BACKBONE.WEIGHTS: {path} is not a readable state dict: {error}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise BackboneWeightsError(f"MODEL.BACKBONE.WEIGHTS: {path} does not hold a state dict")
    expected = {k: v for k, v in resnet.state_dict().items() if not k.startswith("fc.")}
    missing = sorted(set(expected) - set(state))
    if missing:
        raise BackboneWeightsError(
            f"MODEL.BACKBONE.WEIGHTS: {path} lacks {len(missing)} ResNet tensors (first: {', '.join(missing[:5])}); "
            "expected a torchvision ResNet-50 ImageNet state dict")
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise BackboneWeightsError(f"MODEL.BACKBONE.WEIGHTS: {path} has tensors of other shapes: {'; '.join(wrong[:5])}")
    resnet.load_state_dict({k: state[k] for k in expected}, strict=False)


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
            load_imagenet_weights(resnet, cfg.WEIGHTS)
        return ResNetBackbone(resnet)
    raise ValueError(f"MODEL.BACKBONE.NAME: unknown backbone {cfg.NAME!r}")
