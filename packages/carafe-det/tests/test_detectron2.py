"""The detectron2 project against a real detectron2 (skipped where detectron2 is not installed): registries,
add_carafe_config, the four paper configs, numerical equality of the baseline modules with detectron2's own, COCO
folders as datasets, and training + COCO evaluation through carafe-det-train --engine detectron2."""

from __future__ import annotations

import json

import pytest
import torch

detectron2 = pytest.importorskip("detectron2")

from carafe_engine import ConfigError  # noqa: E402
from carafe_ops import CARAFEPack  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.layers import ShapeSpec  # noqa: E402
from detectron2.modeling import BACKBONE_REGISTRY, ROI_MASK_HEAD_REGISTRY, build_backbone, build_model  # noqa: E402
from detectron2.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead  # noqa: E402

from carafe_det.configs import resolve_config_path  # noqa: E402
from carafe_det.data import DatasetError  # noqa: E402
from carafe_det.detectron2_project import (CARAFEFPNBackbone, CARAFEMaskHead, add_carafe_config,  # noqa: E402
                                           load_detectron2_config, register_coco_folder, register_config_datasets)
from carafe_det.cli.predict import main as predict_main  # noqa: E402
from carafe_det.cli.train import main as train_main  # noqa: E402

PAPER = ("faster_rcnn_R_50_FPN_1x", "faster_rcnn_R_50_FPN_carafe_1x", "mask_rcnn_R_50_FPN_1x",
         "mask_rcnn_R_50_FPN_carafe_1x")


def config(name: str, *opts):
    return load_detectron2_config(resolve_config_path(f"detectron2/{name}.yaml"), ["MODEL.DEVICE", "cpu", *opts])


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_modules_are_registered_and_config_keys_added():
    assert "build_carafe_resnet_fpn_backbone" in BACKBONE_REGISTRY._obj_map
    assert ROI_MASK_HEAD_REGISTRY.get("CARAFEMaskHead") is CARAFEMaskHead
    cfg = get_cfg()
    add_carafe_config(cfg)
    assert (cfg.MODEL.FPN.UPSAMPLE, cfg.MODEL.FPN.TOP_LEVEL, cfg.MODEL.ROI_MASK_HEAD.UPSAMPLE) == ("carafe", "conv",
                                                                                                  "carafe")
    assert dict(cfg.MODEL.CARAFE) == {"UP_KERNEL": 5, "UP_GROUP": 1, "ENCODER_KERNEL": 3, "ENCODER_DILATION": 1,
                                      "COMPRESSED_CHANNELS": 64}


def test_paper_configs_hold_the_papers_settings():
    for name in PAPER:
        cfg = config(name)
        assert cfg.INPUT.MIN_SIZE_TRAIN == (800,) and cfg.INPUT.MAX_SIZE_TRAIN == 1333
        assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (800, 1333)
        s = cfg.SOLVER
        assert (s.BASE_LR, s.MOMENTUM, s.WEIGHT_DECAY, s.IMS_PER_BATCH, s.GAMMA) == (0.02, 0.9, 1e-4, 16, 0.1)
        # 12 epochs of COCO train2017's 117,266 annotated images at 16 per batch, x0.1 after epochs 8 and 11
        iters_per_epoch = 117_266 / 16
        assert s.MAX_ITER == round(12 * iters_per_epoch)
        assert s.STEPS == (round(8 * iters_per_epoch), round(11 * iters_per_epoch))
        # from the authors' release (mmdetection v1), as in the torchvision engine's configs
        assert (s.WARMUP_ITERS, s.WARMUP_FACTOR) == (500, pytest.approx(1 / 3))
        clip = s.CLIP_GRADIENTS
        assert (clip.ENABLED, clip.CLIP_TYPE, clip.CLIP_VALUE, clip.NORM_TYPE) == (True, "norm", 35.0, 2.0)
        assert (cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN, cfg.MODEL.RPN.POST_NMS_TOPK_TEST) == (2000, 1000)
        assert cfg.MODEL.RESNETS.DEPTH == 50 and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 80
        assert (cfg.MODEL.RESNETS.NORM, cfg.MODEL.BACKBONE.FREEZE_AT) == ("FrozenStatsBN", 2)
        carafe = "carafe" in name
        assert cfg.MODEL.FPN.UPSAMPLE == ("carafe" if carafe else "nearest")
        assert cfg.MODEL.MASK_ON == name.startswith("mask")


def test_the_four_paper_models():
    models = {name: build_model(config(name)) for name in PAPER}
    faster, faster_carafe = models["faster_rcnn_R_50_FPN_1x"], models["faster_rcnn_R_50_FPN_carafe_1x"]
    mask, mask_carafe = models["mask_rcnn_R_50_FPN_1x"], models["mask_rcnn_R_50_FPN_carafe_1x"]
    # detectron2's own R50-FPN Faster R-CNN (build_resnet_fpn_backbone) has the same parameters as our baseline
    # (its "BN" has the trainable affine of the release's statistics-frozen BatchNorm)
    reference = build_model(config("faster_rcnn_R_50_FPN_1x", "MODEL.BACKBONE.NAME", "build_resnet_fpn_backbone",
                                   "MODEL.RESNETS.NORM", "BN"))
    assert count(faster) == count(reference)
    packs = [m for m in faster_carafe.backbone.modules() if isinstance(m, CARAFEPack)]
    assert [count(p) for p in packs] == [74_148] * 4
    neck_extra = (2048 * 256 * 9 + 256) + (256 * 256 * 9 + 256) + 4 * 74_148
    assert count(faster_carafe) - count(faster) == neck_extra
    assert isinstance(mask_carafe.roi_heads.mask_head.upsample_predictor.upsample, CARAFEPack)
    assert count(mask_carafe) - count(mask) == neck_extra - (256 * 256 * 4 + 256) + 74_148
    assert faster.backbone.size_divisibility == 32 and faster_carafe.backbone.size_divisibility == 64
    assert list(faster_carafe.backbone.output_shape()) == ["p2", "p3", "p4", "p5", "p6"]


def test_release_batchnorm_keeps_its_statistics_and_trains_its_affine():
    """RESNETS.NORM FrozenStatsBN: stem and res2 (before FREEZE_AT 2) are detectron2's FrozenBatchNorm2d; res3..res5
    keep their statistics in training mode and train their affine."""
    from detectron2.layers import FrozenBatchNorm2d

    from carafe_det.modeling import FrozenStatsBatchNorm2d

    opts = ("MODEL.RESNETS.DEPTH", 18, "MODEL.RESNETS.RES2_OUT_CHANNELS", 64, "MODEL.FPN.OUT_CHANNELS", 32)
    backbone = build_backbone(config("faster_rcnn_R_50_FPN_carafe_1x", *opts)).train()
    bottom_up = backbone.bottom_up
    norms = lambda module: [m for m in module.modules() if "BatchNorm" in type(m).__name__]  # noqa: E731
    assert all(type(m) is FrozenBatchNorm2d for m in norms(bottom_up.stem) + norms(bottom_up.res2))
    later = [m for name in ("res3", "res4", "res5") for m in norms(getattr(bottom_up, name))]
    assert later and all(type(m) is FrozenStatsBatchNorm2d and not m.training for m in later)
    assert all(m.weight.requires_grad and m.bias.requires_grad for m in later)
    before = [m.running_var.clone() for m in later]
    backbone(torch.randn(2, 3, 64, 64) * 3)["p2"].sum().backward()
    assert all(torch.equal(b, m.running_var) for b, m in zip(before, later))
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in later)


@torch.no_grad()
def test_baseline_backbone_equals_detectron2s_fpn_with_the_same_weights():
    opts = ("MODEL.RESNETS.DEPTH", 18, "MODEL.RESNETS.RES2_OUT_CHANNELS", 64, "MODEL.FPN.OUT_CHANNELS", 32,
            "MODEL.FPN.UPSAMPLE", "nearest", "MODEL.FPN.TOP_LEVEL", "maxpool")
    ours = build_backbone(config("faster_rcnn_R_50_FPN_1x", *opts)).eval()
    theirs = build_backbone(config("faster_rcnn_R_50_FPN_1x", *opts, "MODEL.BACKBONE.NAME",
                                   "build_resnet_fpn_backbone", "MODEL.RESNETS.NORM", "BN")).eval()
    assert isinstance(ours, CARAFEFPNBackbone)
    theirs.bottom_up.load_state_dict(ours.bottom_up.state_dict())
    for i in range(4):
        getattr(theirs, f"fpn_lateral{i + 2}").load_state_dict(ours.fpn.lateral_convs[i].state_dict())
        getattr(theirs, f"fpn_output{i + 2}").load_state_dict(ours.fpn.fpn_convs[i].state_dict())
    image = torch.randn(1, 3, 128, 160)
    expected, got = theirs(image), ours(image)
    assert list(got) == list(expected) == ["p2", "p3", "p4", "p5", "p6"]
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], msg=name)


@torch.no_grad()
def test_deconv_mask_head_equals_detectron2s_mask_head_with_the_same_weights():
    cfg = config("mask_rcnn_R_50_FPN_1x", "MODEL.ROI_MASK_HEAD.CONV_DIM", 16, "MODEL.ROI_HEADS.NUM_CLASSES", 3)
    shape = ShapeSpec(channels=8, height=14, width=14)
    ours = CARAFEMaskHead(cfg, shape)
    theirs = MaskRCNNConvUpsampleHead(cfg, shape)
    state = {k: v for k, v in ours.state_dict().items() if k.startswith("mask_fcn")}
    state.update({k.replace("upsample_predictor.upsample.deconv", "deconv")
                  .replace("upsample_predictor.mask_fcn_logits", "predictor"): v
                  for k, v in ours.state_dict().items() if k.startswith("upsample_predictor")})
    theirs.load_state_dict(state)
    x = torch.randn(5, 8, 14, 14)
    torch.testing.assert_close(ours.layers(x), theirs.layers(x))


@torch.no_grad()
def test_mask_rcnn_inference_on_an_image_without_detections():
    """No box passes the score threshold, so the CARAFE mask head receives an empty batch of RoI features."""
    model = build_model(load_detectron2_config(resolve_config_path("detectron2/tiny_shapes_mask_rcnn_carafe.yaml"),
                                               ["MODEL.DEVICE", "cpu", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "1.0"]))
    model.eval()
    (output,) = model([{"image": torch.rand(3, 96, 96) * 255, "height": 96, "width": 96}])
    instances = output["instances"]
    assert len(instances) == 0 and instances.pred_masks.shape[0] == 0


def test_coco_folder_registration(shapes_root):
    register_coco_folder("carafe_test_shapes", str(shapes_root), "val")
    records = DatasetCatalog.get("carafe_test_shapes")
    assert len(records) == 12 and records[0]["file_name"].startswith(str(shapes_root / "val"))
    assert MetadataCatalog.get("carafe_test_shapes").thing_classes == ["circle", "triangle", "square"]
    cfg = config("tiny_shapes_mask_rcnn_carafe", "DATASETS.ROOT", shapes_root)
    assert register_config_datasets(cfg) == ["carafe_coco_train", "carafe_coco_val"]


def test_dataset_errors_name_the_folder_and_file(tmp_path, shapes_root):
    with pytest.raises(DatasetError, match=f"dataset folder not found: {tmp_path / 'none'}"):
        register_config_datasets(config("tiny_shapes_mask_rcnn_carafe", "DATASETS.ROOT", tmp_path / "none"))
    with pytest.raises(DatasetError, match="DATASETS.ROOT is empty"):
        register_config_datasets(config("tiny_shapes_mask_rcnn_carafe", "DATASETS.ROOT", ""))
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val").mkdir()
    broken = tmp_path / "annotations" / "instances_val.json"
    broken.write_text("{truncated")
    register_coco_folder("carafe_test_broken", str(tmp_path), "val")
    with pytest.raises(DatasetError, match=f"{broken}: not valid JSON"):
        DatasetCatalog.get("carafe_test_broken")


def test_unknown_config_key_is_named(tmp_path, capsys):
    with pytest.raises(ConfigError, match="command-line override: Non-existent key: MODEL.FPN.UPSAMPLER"):
        config("mask_rcnn_R_50_FPN_carafe_1x", "MODEL.FPN.UPSAMPLER", "carafe")
    path = tmp_path / "bad.yaml"
    path.write_text(f"_BASE_: {resolve_config_path('detectron2/Base-CARAFE-RCNN-FPN.yaml')}\nMODEL:\n  CARAFE:\n"
                    f"    KERNEL: 3\n")
    with pytest.raises(ConfigError, match=f"{path}: Non-existent config key: MODEL.CARAFE.KERNEL"):
        load_detectron2_config(path)
    assert train_main(["--engine", "detectron2", "--config-file", str(path)]) == 2
    assert "carafe-det-train: error:" in capsys.readouterr().err


def test_train_and_evaluate_with_detectron2(shapes_root, tmp_path):
    output = tmp_path / "d2"
    opts = ["DATASETS.ROOT", str(shapes_root), "OUTPUT_DIR", str(output), "SOLVER.MAX_ITER", "4",
            "SOLVER.IMS_PER_BATCH", "2", "SOLVER.WARMUP_ITERS", "2", "SOLVER.CHECKPOINT_PERIOD", "2",
            "INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MAX_SIZE_TRAIN", "96", "INPUT.MIN_SIZE_TEST", "96",
            "INPUT.MAX_SIZE_TEST", "96"]
    base = ["--engine", "detectron2", "--config-file", "detectron2/tiny_shapes_mask_rcnn_carafe.yaml"]
    assert train_main([*base, *opts]) == 0
    assert (output / "model_final.pth").is_file() and (output / "model_0000001.pth").is_file()
    metrics = [json.loads(line) for line in (output / "metrics.json").read_text().splitlines()]
    assert any("loss_mask" in m for m in metrics)
    assert any("segm/AP50" in m for m in metrics)  # the final COCO evaluation of DefaultTrainer
    assert train_main([*base, "--eval-only", *opts, "MODEL.WEIGHTS", str(output / "model_final.pth"),
                       "OUTPUT_DIR", str(tmp_path / "eval")]) == 0
    results = json.loads((tmp_path / "eval" / "inference" / "coco_instances_results.json").read_text())
    assert all({"bbox", "segmentation", "score", "category_id"} <= set(r) for r in results)
    # carafe-det-predict draws a detectron2 model's detections (given its config file)
    image = shapes_root / "val" / "000001.png"
    assert predict_main(["--weights", str(output / "model_final.pth"), "--config-file",
                         "detectron2/tiny_shapes_mask_rcnn_carafe.yaml", "--score-thresh", "0",
                         "--input", str(image), "--output", str(tmp_path / "pictures"),
                         "DATASETS.ROOT", str(shapes_root), *opts[4:]]) == 0
    assert (tmp_path / "pictures" / "000001.png").is_file()
    (record,) = json.loads((tmp_path / "pictures" / "predictions.json").read_text())
    assert all(d["class"] in {"circle", "triangle", "square"} for d in record["models"]["d2"])
