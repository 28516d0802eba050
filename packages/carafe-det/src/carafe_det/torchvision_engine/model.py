"""The four detectors on torchvision: Faster R-CNN / Mask R-CNN with a ResNet body, the CARAFEFPN neck and (Mask
R-CNN) the MaskUpsamplePredictor; baseline or CARAFE by the config's MODEL.FPN.UPSAMPLE / TOP_LEVEL and
MODEL.ROI_MASK_HEAD.UPSAMPLE."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Dict

from carafe_engine import CfgNode, ConfigError, load_model_state, load_pretrained
from torch import Tensor, nn
from torchvision.models import resnet
from torchvision.models.resnet import BasicBlock
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.ops import FrozenBatchNorm2d

from ..modeling import CARAFEFPN, CARAFESettings, FrozenStatsBatchNorm2d, MaskUpsamplePredictor
from .layers import build_anchor_generator, build_roi_pooler, build_transform

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
BACKBONES = RESNETS + ("tiny",)
# torchvision's names for the stages: stem = conv1/bn1, res2..res5 = layer1..layer4
STAGES = (("conv1", "bn1"), ("layer1",), ("layer2",), ("layer3",), ("layer4",))


class TinyResNet(nn.Module):
    """A narrow ResNet for CPU demos and tests (widths 16/32/64/128, one basic block per stage, strides 4..32),
    about 1/40 of ResNet-18's compute; with the attribute names of torchvision's ResNet so that the same code
    builds the FPN and freezes stages."""

    def __init__(self, norm_layer=nn.BatchNorm2d, widths=(16, 32, 64, 128)):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), norm_layer(widths[0]), nn.ReLU(),
                                   nn.Conv2d(widths[0], widths[0], 3, 2, 1, bias=False))
        self.bn1 = norm_layer(widths[0])
        self.relu = nn.ReLU(inplace=True)
        channels = widths[0]
        for i, width in enumerate(widths, start=1):
            stride = 1 if i == 1 else 2  # res2 keeps the stem's size and width
            down = None if i == 1 else nn.Sequential(nn.Conv2d(channels, width, 1, stride, bias=False),
                                                     norm_layer(width))
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(channels, width, stride, down, norm_layer=norm_layer)))
            channels = width


def _output_channels(block: nn.Module) -> int:
    """A torchvision BasicBlock's or Bottleneck's output channels."""
    return (block.conv3 if hasattr(block, "conv3") else block.conv2).out_channels


class ResNetFPNBackbone(nn.Module):
    """ResNet C2..C5 -> CARAFEFPN -> OrderedDict '0'..'3', 'pool' (the names torchvision's heads expect)."""

    def __init__(self, cfg: CfgNode):
        super().__init__()
        name = cfg.MODEL.BACKBONE.NAME  # NAME, NORM and FREEZE_AT are checked by the config (add_det_config)
        norm = {"FrozenBN": FrozenBatchNorm2d, "FrozenStatsBN": FrozenStatsBatchNorm2d,
                "BN": nn.BatchNorm2d}[cfg.MODEL.BACKBONE.NORM]
        net = TinyResNet(norm) if name == "tiny" else getattr(resnet, name)(weights=None, norm_layer=norm)
        if cfg.MODEL.BACKBONE.WEIGHTS:
            load_pretrained(net, cfg.MODEL.BACKBONE.WEIGHTS)
        for stage in STAGES[:cfg.MODEL.BACKBONE.FREEZE_AT]:
            for module_name in stage:
                getattr(net, module_name).requires_grad_(False)
        self.body = IntermediateLayerGetter(net, {f"layer{i}": str(i - 1) for i in range(1, 5)})
        widths = [_output_channels(getattr(net, f"layer{i}")[-1]) for i in range(1, 5)]
        fpn = cfg.MODEL.FPN
        self.fpn = CARAFEFPN(widths, fpn.OUT_CHANNELS, num_outs=5, upsample=fpn.UPSAMPLE, top_level=fpn.TOP_LEVEL,
                             carafe=CARAFESettings.from_config(cfg.MODEL.CARAFE))
        self.out_channels = fpn.OUT_CHANNELS

    def forward(self, images: Tensor) -> Dict[str, Tensor]:
        levels = self.fpn(list(self.body(images).values()))
        return OrderedDict([(name, level) for name, level in zip(["0", "1", "2", "3", "pool"], levels)])


def build_model(cfg: CfgNode) -> nn.Module:
    """torchvision FasterRCNN (MODEL.MASK_ON false) or MaskRCNN with the CARAFE modules, on the CPU."""
    backbone = ResNetFPNBackbone(cfg)
    m = cfg.MODEL
    sizes = tuple(tuple(level) for level in m.ANCHOR_GENERATOR.SIZES)
    if len(sizes) != 5:
        raise ConfigError(f"MODEL.ANCHOR_GENERATOR.SIZES needs one list per pyramid level (5); got {len(sizes)}")
    anchors = build_anchor_generator(sizes, m.ANCHOR_GENERATOR.ASPECT_RATIOS, m.ANCHOR_GENERATOR.STYLE)
    num_classes = m.ROI_HEADS.NUM_CLASSES + 1  # torchvision counts the background class
    channels = backbone.out_channels
    common = dict(
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=m.RPN.PRE_NMS_TOPK_TRAIN, rpn_pre_nms_top_n_test=m.RPN.PRE_NMS_TOPK_TEST,
        rpn_post_nms_top_n_train=m.RPN.POST_NMS_TOPK_TRAIN, rpn_post_nms_top_n_test=m.RPN.POST_NMS_TOPK_TEST,
        rpn_nms_thresh=m.RPN.NMS_THRESH, rpn_batch_size_per_image=m.RPN.BATCH_SIZE_PER_IMAGE,
        box_roi_pool=build_roi_pooler(7, m.ROI_BOX_HEAD.POOLER_TYPE, m.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO),
        box_head=TwoMLPHead(channels * 7 * 7, m.ROI_BOX_HEAD.FC_DIM),
        box_predictor=FastRCNNPredictor(m.ROI_BOX_HEAD.FC_DIM, num_classes),
        box_score_thresh=m.ROI_HEADS.SCORE_THRESH_TEST, box_nms_thresh=m.ROI_HEADS.NMS_THRESH_TEST,
        box_detections_per_img=m.ROI_HEADS.DETECTIONS_PER_IMAGE,
        box_batch_size_per_image=m.ROI_HEADS.BATCH_SIZE_PER_IMAGE,
        box_positive_fraction=m.ROI_HEADS.POSITIVE_FRACTION,
    )
    if not m.MASK_ON:
        model = FasterRCNN(backbone, **common)
    else:
        head = m.ROI_MASK_HEAD
        model = MaskRCNN(
            backbone, **common,
            mask_roi_pool=build_roi_pooler(14, head.POOLER_TYPE, head.POOLER_SAMPLING_RATIO),
            mask_head=MaskRCNNHeads(channels, [head.CONV_DIM] * head.NUM_CONV, 1),
            mask_predictor=MaskUpsamplePredictor(head.CONV_DIM, num_classes, upsample=head.UPSAMPLE, scale_factor=2,
                                                 carafe=CARAFESettings.from_config(m.CARAFE)),
        )
    # torchvision's transform replaced, keeping its image mean and std: the train and test sizes switched by the
    # mode, mmdetection's geometry by INPUT.RESIZE_ROUNDING nearest or MODEL.ROI_MASK_HEAD.PASTE exact
    model.transform = build_transform(((cfg.INPUT.MIN_SIZE_TRAIN,), cfg.INPUT.MAX_SIZE_TRAIN),
                                      ((cfg.INPUT.MIN_SIZE_TEST,), cfg.INPUT.MAX_SIZE_TEST), model.transform.image_mean,
                                      model.transform.image_std, cfg.INPUT.SIZE_DIVISIBILITY, cfg.INPUT.RESIZE_ROUNDING,
                                      m.ROI_MASK_HEAD.PASTE)
    model.transform.train(model.training)
    return model


# the config keys that tell the models apart, named when a checkpoint of another one is loaded
MODEL_KEYS = ("MODEL.FPN.UPSAMPLE", "MODEL.FPN.TOP_LEVEL", "MODEL.ROI_MASK_HEAD.UPSAMPLE", "MODEL.BACKBONE.NAME",
              "MODEL.ROI_HEADS.NUM_CLASSES")


def load_model_weights(model: nn.Module, state: dict, path: str | Path) -> None:
    """Loads a checkpoint's 'model' into model (or a DistributedDataParallel's module)."""
    load_model_state(getattr(model, "module", model), state, path, described=MODEL_KEYS)
