"""Test helpers: a state dict in mmdetection v2's key layout and shapes (a key -> shape table written from reading
mmdetection 2.28's ResNet, FPN, FPN_CARAFE, RPNHead, Shared2FCBBoxHead, FCNMaskHead and mmcv's CARAFEPack; no
mmdetection code), filled with random values except the class rows, which hold their class index; and the
authors' FPN / FPN_CARAFE forward written from its definition with torch.nn.functional and carafe_ops' reference
CARAFE, to check the converted neck against."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from carafe_ops.reference import carafe as reference_carafe

RESNET50_BLOCKS = (3, 4, 6, 3)
WIDTHS = (64, 128, 256, 512)  # bottleneck widths; outputs x 4
FPN_IN = (256, 512, 1024, 2048)
C, C_M, K_UP, K_ENC = 256, 64, 5, 3
ENCODER_OUT = 2 * 2 * K_UP * K_UP  # sigma^2 k_up^2 G


def _bn(name: str, channels: int) -> dict:
    return {f"{name}.weight": (channels,), f"{name}.bias": (channels,), f"{name}.running_mean": (channels,),
            f"{name}.running_var": (channels,), f"{name}.num_batches_tracked": ()}


def _conv(name: str, out: int, inp: int, k: int, bias: bool = True) -> dict:
    shapes = {f"{name}.weight": (out, inp, k, k)}
    if bias:
        shapes[f"{name}.bias"] = (out,)
    return shapes


def _carafe_pack(name: str) -> dict:
    return {**_conv(f"{name}.channel_compressor", C_M, C, 1), **_conv(f"{name}.content_encoder", ENCODER_OUT, C_M,
                                                                       K_ENC)}


def mmdet_shapes(mask_on: bool, carafe_fpn: bool, mask_upsample: str | None, num_classes: int = 80) -> dict:
    """key -> shape of an mmdetection v2 Faster / Mask R-CNN R50-FPN (FPN or FPN_CARAFE neck)."""
    shapes = {**_conv("backbone.conv1", 64, 3, 7, bias=False), **_bn("backbone.bn1", 64)}
    inplanes = 64
    for stage, (blocks, width) in enumerate(zip(RESNET50_BLOCKS, WIDTHS), start=1):
        for i in range(blocks):
            p = f"backbone.layer{stage}.{i}"
            shapes.update({**_conv(f"{p}.conv1", width, inplanes, 1, False), **_bn(f"{p}.bn1", width),
                           **_conv(f"{p}.conv2", width, width, 3, False), **_bn(f"{p}.bn2", width),
                           **_conv(f"{p}.conv3", 4 * width, width, 1, False), **_bn(f"{p}.bn3", 4 * width)})
            if i == 0:
                shapes.update({**_conv(f"{p}.downsample.0", 4 * width, inplanes, 1, False),
                               **_bn(f"{p}.downsample.1", 4 * width)})
            inplanes = 4 * width
    for i, channels in enumerate(FPN_IN):
        shapes.update(_conv(f"neck.lateral_convs.{i}.conv", C, channels, 1))
    if carafe_fpn:  # FPN_CARAFE's P6: a stride-2 3x3 conv on C5 as a fifth lateral, and four CARAFEPacks
        shapes.update(_conv("neck.lateral_convs.4.conv", C, FPN_IN[-1], 3))
        for i in range(4):
            shapes.update(_carafe_pack(f"neck.upsample_modules.{i}"))
    for i in range(5 if carafe_fpn else 4):
        shapes.update(_conv(f"neck.fpn_convs.{i}.conv", C, C, 3))
    shapes.update({**_conv("rpn_head.rpn_conv", C, C, 3), **_conv("rpn_head.rpn_cls", 3, C, 1),
                   **_conv("rpn_head.rpn_reg", 12, C, 1)})
    b = "roi_head.bbox_head"
    shapes.update({f"{b}.shared_fcs.0.weight": (1024, C * 7 * 7), f"{b}.shared_fcs.0.bias": (1024,),
                   f"{b}.shared_fcs.1.weight": (1024, 1024), f"{b}.shared_fcs.1.bias": (1024,),
                   f"{b}.fc_cls.weight": (num_classes + 1, 1024), f"{b}.fc_cls.bias": (num_classes + 1,),
                   f"{b}.fc_reg.weight": (4 * num_classes, 1024), f"{b}.fc_reg.bias": (4 * num_classes,)})
    if mask_on:
        for i in range(4):
            shapes.update(_conv(f"roi_head.mask_head.convs.{i}.conv", C, C, 3))
        if mask_upsample == "deconv":  # ConvTranspose2d(256, 256, 2, stride=2): weight (in, out, 2, 2)
            shapes.update({"roi_head.mask_head.upsample.weight": (C, C, 2, 2), "roi_head.mask_head.upsample.bias": (C,)})
        else:
            shapes.update(_carafe_pack("roi_head.mask_head.upsample"))
        shapes.update(_conv("roi_head.mask_head.conv_logits", num_classes, C, 1))
    return shapes


# (key prefix, rows per class) of the class-indexed tensors; fc_cls has the background as its last row
CLASS_ROWS = {"roi_head.bbox_head.fc_cls.": 1, "roi_head.bbox_head.fc_reg.": 4, "roi_head.mask_head.conv_logits.": 1}


def mmdet_state_dict(mask_on: bool, carafe_fpn: bool, mask_upsample: str | None = None, num_classes: int = 80,
                     seed: int = 0) -> "OrderedDict[str, torch.Tensor]":
    """Random tensors in the layout; row r of each class tensor (r // rows per class) holds 1000 + class index,
    plus a small random part so that no two tensors are equal."""
    generator = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, shape in mmdet_shapes(mask_on, carafe_fpn, mask_upsample, num_classes).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000, dtype=torch.int64)
            continue
        fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
        tensor = torch.randn(shape, generator=generator) / fan_in ** 0.5
        if key.endswith("running_var"):
            tensor = tensor.abs() + 0.5
        prefix = next((p for p in CLASS_ROWS if key.startswith(p)), None)
        if prefix is not None:
            rows = torch.arange(shape[0]) // CLASS_ROWS[prefix]
            tensor = tensor * 1e-3 + (1000 + rows).view(-1, *[1] * (len(shape) - 1)).float()
        state[key] = tensor
    return state


def _conv2d(state, name, x, stride=1, padding=0):
    return F.conv2d(x, state[f"{name}.weight"], state[f"{name}.bias"], stride=stride, padding=padding)


def _carafe_pack_forward(state, name, x):
    """mmcv's CARAFEPack from its definition: compress, encode, pixel-shuffle by 2, softmax over the k_up^2 taps,
    reassemble (carafe_ops' pure-PyTorch reference)."""
    mask = _conv2d(state, f"{name}.content_encoder", _conv2d(state, f"{name}.channel_compressor", x),
                   padding=K_ENC // 2)
    mask = F.pixel_shuffle(mask, 2)
    n, _, h, w = mask.shape
    mask = F.softmax(mask.view(n, 1, K_UP * K_UP, h, w), dim=2).view(n, K_UP * K_UP, h, w)
    return reference_carafe(x, mask, K_UP, 1, 2)


def reference_neck(state, features, carafe_fpn: bool):
    """The authors' neck on C2..C5 from the mmdetection weights: FPN (nearest top-down to the finer map's size,
    P6 = max_pool2d(P5, 1, stride 2)) or FPN_CARAFE (a fifth lateral from C5 by a stride-2 conv, CARAFE x2 top-down
    cropped to the finer map, a 3x3 conv on every level)."""
    laterals = [_conv2d(state, f"neck.lateral_convs.{i}.conv", f) for i, f in enumerate(features)]
    if carafe_fpn:
        laterals.append(_conv2d(state, "neck.lateral_convs.4.conv", features[-1], stride=2, padding=1))
    for i in range(len(laterals) - 1, 0, -1):
        finer = laterals[i - 1]
        if carafe_fpn:
            up = _carafe_pack_forward(state, f"neck.upsample_modules.{i - 1}", laterals[i])
            up = up[:, :, :finer.shape[2], :finer.shape[3]]
        else:
            up = F.interpolate(laterals[i], size=finer.shape[2:], mode="nearest")
        laterals[i - 1] = finer + up
    outs = [_conv2d(state, f"neck.fpn_convs.{i}.conv", x, padding=1) for i, x in enumerate(laterals)]
    if not carafe_fpn:
        outs.append(F.max_pool2d(outs[-1], 1, stride=2))
    return outs


def random_features(seed: int = 1, size=(21, 27)):
    """C2..C5 of an image of odd size: each level ceil-halves the previous one, as a ResNet's does."""
    generator = torch.Generator().manual_seed(seed)
    h, w = size
    features = []
    for channels in FPN_IN:
        features.append(torch.randn(1, channels, h, w, generator=generator))
        h, w = (h + 1) // 2, (w + 1) // 2
    return features


VARIANT_LAYOUTS = {  # mmdetection config name -> (mask_on, carafe_fpn, mask_upsample)
    "faster_rcnn_r50_fpn_1x_coco": (False, False, None),
    "faster_rcnn_r50_fpn_carafe_1x_coco": (False, True, None),
    "mask_rcnn_r50_fpn_1x_coco": (True, False, "deconv"),
    "mask_rcnn_r50_fpn_carafe_1x_coco": (True, True, "carafe"),
}
