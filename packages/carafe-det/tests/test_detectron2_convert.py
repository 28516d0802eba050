"""carafe-det-convert --engine detectron2 (skipped where detectron2 is not installed): mmdetection v2 state dicts
in its exact layout converted, read by detectron2's DetectionCheckpointer into the model of the shipped
detectron2/mmdet configs with nothing missing or left over, every tensor used, the class rows in detectron2's
(= mmdetection's) order, the backbone being mmdetection's pytorch-style ResNet and the neck FPN_CARAFE's."""

from __future__ import annotations

import pytest
import torch

detectron2 = pytest.importorskip("detectron2")

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from torchvision.models import resnet50  # noqa: E402

from carafe_det.cli.convert import main as convert_main  # noqa: E402
from carafe_det.configs import resolve_config_path  # noqa: E402
from carafe_det.convert import VARIANTS, convert_checkpoint  # noqa: E402
from carafe_det.detectron2_project import load_detectron2_config  # noqa: E402
from mmdet_layout import VARIANT_LAYOUTS, mmdet_state_dict, random_features, reference_neck  # noqa: E402

NAMES = [v.name for v in VARIANTS]


def d2_config(name: str, *opts):
    return load_detectron2_config(resolve_config_path(f"detectron2/mmdet/{name}.yaml"), ["MODEL.DEVICE", "cpu", *opts])


@pytest.mark.parametrize("name", NAMES)
def test_converts_and_detectron2_loads_it(tmp_path, name):
    source = mmdet_state_dict(*VARIANT_LAYOUTS[name], seed=3)
    torch.save({"meta": {}, "state_dict": source}, tmp_path / "mmdet.pth")
    result = convert_checkpoint(tmp_path / "mmdet.pth", tmp_path / "d2.pth", "detectron2")
    assert result.conversion.variant.name == name and not result.conversion.zero_rows

    cfg = d2_config(name)
    model = build_model(cfg).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    checkpointer = DetectionCheckpointer(model)
    checkpointer.load(str(tmp_path / "d2.pth"))  # what --eval-only's MODEL.WEIGHTS does
    loaded = model.state_dict()
    assert not [k for k in loaded if torch.equal(loaded[k], before[k])]  # every tensor was replaced
    model.load_state_dict(torch.load(tmp_path / "d2.pth", weights_only=True)["model"], strict=True)

    counters = [k for k in source if k.endswith("num_batches_tracked")]
    assert len(loaded) == len(source) - len(counters)
    for key, tensor in source.items():  # every source tensor, unchanged, in exactly one place
        if not key.endswith("num_batches_tracked"):
            assert sum(t.shape == tensor.shape and torch.equal(t, tensor) for t in loaded.values()) == 1, key
    # detectron2 orders classes as mmdetection does (background last)
    cls = loaded["roi_heads.box_predictor.cls_score.weight"].round()
    assert all(cls[i].eq(1000 + i).all() for i in range(81))
    if cfg.MODEL.MASK_ON:
        logits = loaded["roi_heads.mask_head.upsample_predictor.mask_fcn_logits.weight"].round()
        assert all(logits[i].eq(1000 + i).all() for i in range(80))

    features = random_features(seed=4)
    with torch.no_grad():
        ours = model.backbone.fpn(features)
        theirs = reference_neck(source, features, VARIANT_LAYOUTS[name][1])
    for level, (o, t) in enumerate(zip(ours, theirs)):
        torch.testing.assert_close(o, t, rtol=1e-4, atol=1e-5, msg=f"P{level + 2}")


def test_backbone_is_mmdets_pytorch_style_resnet(tmp_path):
    """The mmdet configs' detectron2 ResNet (STRIDE_IN_1X1 False) with the converted weights computes what
    torchvision's ResNet-50 (mmdetection's "pytorch style": the same layout and names) does with the source's."""
    source = mmdet_state_dict(False, False, seed=5)
    torch.save(source, tmp_path / "mmdet.pth")
    assert convert_main([str(tmp_path / "mmdet.pth"), "--output", str(tmp_path / "d2.pth"), "--engine", "detectron2"]) == 0
    model = build_model(d2_config("faster_rcnn_r50_fpn_1x_coco")).eval()
    DetectionCheckpointer(model).load(str(tmp_path / "d2.pth"))
    reference = resnet50()
    reference.load_state_dict({k[len("backbone."):]: v for k, v in source.items() if k.startswith("backbone.")},
                              strict=False)
    reference.eval()
    image = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model.backbone.bottom_up(image)
        x = reference.maxpool(reference.relu(reference.bn1(reference.conv1(image))))
        for stage in range(1, 5):
            x = getattr(reference, f"layer{stage}")(x)
            torch.testing.assert_close(ours[f"res{stage + 1}"], x, rtol=1e-4, atol=1e-4)


def test_exact_mask_paste_is_detectron2s():
    """The torchvision engine's exact pasting (mmdetection's) gives detectron2's binary masks."""
    from detectron2.layers.mask_ops import paste_masks_in_image
    from detectron2.structures import Boxes

    from carafe_det.torchvision_engine.layers import paste_masks_exact

    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(6, 1, 28, 28, generator=generator)
    corners = torch.rand(6, 2, generator=generator) * 60
    boxes = torch.cat([corners, corners + 5 + torch.rand(6, 2, generator=generator) * 80], 1)
    ours = paste_masks_exact(masks, boxes, 120, 150)[:, 0] >= 0.5
    theirs = paste_masks_in_image(masks[:, 0], Boxes(boxes), (120, 150), threshold=0.5)
    assert torch.equal(ours, theirs)


def test_mmdet_configs_hold_mmdets_inference_settings():
    for variant in VARIANTS:
        cfg = d2_config(variant.name)
        m = cfg.MODEL
        assert (m.MASK_ON, m.FPN.UPSAMPLE) == (variant.mask_on, variant.fpn_upsample)
        assert m.RESNETS.STRIDE_IN_1X1 is False and cfg.INPUT.FORMAT == "RGB"
        assert list(m.PIXEL_MEAN) == [123.675, 116.28, 103.53] and list(m.PIXEL_STD) == [58.395, 57.12, 57.375]
        for head in (m.ROI_BOX_HEAD, m.ROI_MASK_HEAD):
            assert (head.POOLER_TYPE, head.POOLER_SAMPLING_RATIO) == ("ROIAlignV2", 0)
        assert m.ANCHOR_GENERATOR.OFFSET == 0.0 and list(m.ANCHOR_GENERATOR.ASPECT_RATIOS[0]) == [0.5, 1.0, 2.0]
        assert (m.RPN.PRE_NMS_TOPK_TEST, m.RPN.POST_NMS_TOPK_TEST, m.RPN.NMS_THRESH) == (1000, 1000, 0.7)
        assert (m.ROI_HEADS.SCORE_THRESH_TEST, m.ROI_HEADS.NMS_THRESH_TEST, cfg.TEST.DETECTIONS_PER_IMAGE) == (
            0.05, 0.5, 100)
        assert tuple(m.ROI_BOX_HEAD.BBOX_REG_WEIGHTS) == (10.0, 10.0, 5.0, 5.0)
        if m.MASK_ON:
            assert m.ROI_MASK_HEAD.UPSAMPLE == variant.mask_upsample
        model = build_model(cfg)
        assert model.backbone.size_divisibility == (64 if variant.fpn_upsample == "carafe" else 32)


def test_eval_only_reads_a_converted_checkpoint(tmp_path, shapes_root):
    """carafe-det-train --engine detectron2 --eval-only with a converted checkpoint and the mmdet config (3 classes,
    the generated shapes dataset, small images)."""
    from carafe_det.cli.train import main as train_main

    state = mmdet_state_dict(True, True, "carafe", num_classes=3)
    torch.save({"meta": {"CLASSES": ("circle", "triangle", "square")}, "state_dict": state}, tmp_path / "mmdet.pth")
    classes = ["MODEL.ROI_HEADS.NUM_CLASSES", "3"]
    assert convert_main([str(tmp_path / "mmdet.pth"), "--output", str(tmp_path / "d2.pth"), "--engine", "detectron2",
                         *classes]) == 0
    config = "detectron2/mmdet/mask_rcnn_r50_fpn_carafe_1x_coco.yaml"
    assert train_main(["--engine", "detectron2", "--config-file", config,
                       "--eval-only", "MODEL.WEIGHTS", str(tmp_path / "d2.pth"), "MODEL.DEVICE", "cpu",
                       "DATASETS.ROOT", str(shapes_root), "DATASETS.TRAIN", "('carafe_coco_train',)",
                       "DATASETS.TEST", "('carafe_coco_val',)",
                       "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "96", "OUTPUT_DIR", str(tmp_path / "eval"),
                       *classes]) == 0
    assert (tmp_path / "eval" / "inference" / "coco_instances_results.json").is_file()
