"""Backbones that return four feature maps at strides 4, 8, 16 and 32 (C2..C5), as UperNet's decoder expects.

- `csail_resnet50`: the ResNet-50 of the official UperNet implementation (CSAILVision/semantic-segmentation-pytorch,
  mit_semseg/models/resnet.py `resnet50` wrapped by models.py `Resnet`), the paper's backbone: a deep stem of three
  3x3 conv-BN-ReLU (64, 64, 128 channels, the first strided) and a max-pool, then torchvision-style bottlenecks
  (stride on the 3x3) starting from 128 channels. Its modules have the official names, so CSAIL's ImageNet
  weights (resnet50-imagenet.pth, `fc` ignored) and the encoder of its trained models load by name.
- `torchvision_resnet50`: torchvision's ResNet-50 (7x7 stem), with torchvision's ImageNet weights.
- `tiny`: a small plain convnet for CPU demos and tests, trained from scratch.

ImageNet weights are read from the path MODEL.BACKBONE.WEIGHTS gives; nothing is downloaded.
"""

from __future__ import annotations

import torchvision
from carafe_engine import CheckpointError, load_pretrained
from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck

# ImageNet weights that cannot be loaded (file, contents or shapes); carafe-engine's error
BackboneWeightsError = CheckpointError


class ResNetBackbone(nn.Module):
    """torchvision's ResNet without its pooling and classifier: stem (conv 7x7/2, max-pool /2), then layer1..4."""

    def __init__(self, resnet: torchvision.models.ResNet):
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.out_channels = [(block.bn3 if hasattr(block, "bn3") else block.bn2).num_features
                             for block in (layer[-1] for layer in (self.layer1, self.layer2, self.layer3, self.layer4))]

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


class DeepStemResNet(nn.Module):
    """CSAIL's ResNet (mit_semseg.models.resnet.ResNet without avgpool and fc), with its module names: conv1/bn1,
    conv2/bn2, conv3/bn3, maxpool, layer1..layer4 (Bottleneck blocks: conv1..3, bn1..3, downsample.0/1)."""

    def __init__(self, blocks=(3, 4, 6, 3)):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64)
        self.conv2, self.bn2 = nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64)
        self.conv3, self.bn3 = nn.Conv2d(64, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = 128
        for number, (width, count) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
            stride = 1 if number == 1 else 2
            downsample = nn.Sequential(nn.Conv2d(in_channels, width * 4, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(width * 4))
            layer = [Bottleneck(in_channels, width, stride, downsample)]
            layer += [Bottleneck(width * 4, width) for _ in range(count - 1)]
            setattr(self, f"layer{number}", nn.Sequential(*layer))
            in_channels = width * 4
        self.out_channels = [(block.bn3 if hasattr(block, "bn3") else block.bn2).num_features
                             for block in (layer[-1] for layer in (self.layer1, self.layer2, self.layer3, self.layer4))]
        # the official init: convs N(0, sqrt(2 / (k*k*out_channels))), BatchNorm weight 1 and bias 0
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.maxpool(self.relu(self.bn3(self.conv3(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return [c2, c3, c4, self.layer4(c4)]


class TinyBackbone(nn.Module):
    """Four stages of two 3x3 conv-BN-ReLU each, the first of each strided, after a stride-2 stem: strides 4, 8,
    16, 32 like ResNet's C2..C5, a few hundred thousand parameters."""

    def __init__(self, widths=(16, 32, 64, 128)):
        super().__init__()
        self.stem = conv_bn_relu(3, widths[0], stride=2)
        self.stages = nn.ModuleList(nn.Sequential(conv_bn_relu(previous, width, stride=2), conv_bn_relu(width, width))
                                    for previous, width in zip([widths[0], *widths], widths))
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
    # csail_resnet50 or torchvision_resnet50 (the config's choices)
    resnet = DeepStemResNet() if cfg.NAME == "csail_resnet50" else torchvision.models.resnet50(weights=None)
    if cfg.WEIGHTS:
        load_pretrained(resnet, cfg.WEIGHTS)
    return resnet if isinstance(resnet, DeepStemResNet) else ResNetBackbone(resnet)
