"""The official UperNet-50 in its own module layout (CSAILVision/semantic-segmentation-pytorch: mit_semseg/models/
resnet.py `ResNet`/`Bottleneck`, models.py `Resnet` and `UPerNet` with fpn_dim 512, `conv3x3_bn_relu`), written
here from that code's structure for the tests: its state dicts have the official names and shapes (what
resnet50-imagenet.pth, encoder_epoch_30.pth and decoder_epoch_30.pth hold), and its forward is the official one,
so carafe-seg's converted model can be compared with it. Plain BatchNorm2d stands in for the official
SynchronizedBatchNorm2d (the same tensors: weight, bias, running_mean, running_var)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3_bn_relu(in_planes, out_planes, stride=1):
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False), nn.BatchNorm2d(out_planes),
                         nn.ReLU(inplace=True))


class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class Resnet(nn.Module):
    """The ImageNet ResNet-50 (with_fc: its `fc`, as resnet50-imagenet.pth holds) or the encoder (without)."""

    def __init__(self, with_fc=False):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64)
        self.conv2, self.bn2 = nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64)
        self.conv3, self.bn3 = nn.Conv2d(64, 128, 3, 1, 1, bias=False), nn.BatchNorm2d(128)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 128
        for name, planes, blocks, stride in (("layer1", 64, 3, 1), ("layer2", 128, 4, 2), ("layer3", 256, 6, 2),
                                             ("layer4", 512, 3, 2)):
            downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * 4))
            layers = [Bottleneck(inplanes, planes, stride, downsample)]
            layers += [Bottleneck(planes * 4, planes) for _ in range(blocks - 1)]
            setattr(self, name, nn.Sequential(*layers))
            inplanes = planes * 4
        if with_fc:
            self.fc = nn.Linear(2048, 1000)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.maxpool(F.relu(self.bn3(self.conv3(x))))
        conv_out = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            conv_out.append(x)
        return conv_out


class UPerNet(nn.Module):
    def __init__(self, num_class=150, fc_dim=2048, pool_scales=(1, 2, 3, 6), fpn_inplanes=(256, 512, 1024, 2048),
                 fpn_dim=512):
        super().__init__()
        self.pool_scales = pool_scales
        self.ppm_conv = nn.ModuleList(
            nn.Sequential(nn.Conv2d(fc_dim, 512, 1, bias=False), nn.BatchNorm2d(512), nn.ReLU(inplace=True))
            for _ in pool_scales)
        self.ppm_last_conv = conv3x3_bn_relu(fc_dim + len(pool_scales) * 512, fpn_dim)
        self.fpn_in = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, fpn_dim, 1, bias=False), nn.BatchNorm2d(fpn_dim), nn.ReLU(inplace=True))
            for c in fpn_inplanes[:-1])
        self.fpn_out = nn.ModuleList(nn.Sequential(conv3x3_bn_relu(fpn_dim, fpn_dim)) for _ in fpn_inplanes[:-1])
        self.conv_last = nn.Sequential(conv3x3_bn_relu(len(fpn_inplanes) * fpn_dim, fpn_dim),
                                       nn.Conv2d(fpn_dim, num_class, 1))

    def forward(self, conv_out, seg_size):
        """Class probabilities at seg_size (the official use_softmax=True path, used at test time)."""
        conv5 = conv_out[-1]
        size = conv5.shape[2:]
        ppm_out = [conv5] + [conv(F.interpolate(F.adaptive_avg_pool2d(conv5, scale), size, mode="bilinear",
                                                align_corners=False))
                             for scale, conv in zip(self.pool_scales, self.ppm_conv)]
        f = self.ppm_last_conv(torch.cat(ppm_out, 1))
        features = [f]
        for i in reversed(range(len(conv_out) - 1)):
            lateral = self.fpn_in[i](conv_out[i])
            f = lateral + F.interpolate(f, size=lateral.shape[2:], mode="bilinear", align_corners=False)
            features.append(self.fpn_out[i](f))
        features.reverse()
        size = features[0].shape[2:]
        fused = [features[0]] + [F.interpolate(p, size, mode="bilinear", align_corners=False) for p in features[1:]]
        x = self.conv_last(torch.cat(fused, 1))
        return F.softmax(F.interpolate(x, size=seg_size, mode="bilinear", align_corners=False), dim=1)


def randomize(module: nn.Module, seed: int) -> nn.Module:
    """Every parameter and BatchNorm statistic drawn at random (scaled to keep activations in range), eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif tensor.ndim > 1:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1 + (1.0 if "weight" in name else 0))
    return module.eval()
