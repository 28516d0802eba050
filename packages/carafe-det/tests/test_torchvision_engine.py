"""The torchvision engine without training: the four paper models, configs (errors name the key), checkpoints of
another model refused by the trainer, the learning-rate schedule, and the COCO scoring."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from carafe_engine import CheckpointError, ConfigError, save_checkpoint
from carafe_ops import CARAFEPack
from carafe_ops.nn import Interpolate
from torchvision.models.detection import FasterRCNN, MaskRCNN

from carafe_det.configs import CONFIG_DIR, resolve_config_path
from carafe_det.modeling import DeconvUpsample, MaskUpsamplePredictor
from carafe_det.torchvision_engine import (CocoDetectionDataset, build_model, checkpoint_kind, load_model_weights,
                                           load_torchvision_config)
from carafe_det.torchvision_engine.evaluate import score
from carafe_det.torchvision_engine.trainer import DetectionTrainer, lr_factor, schedule_length

PAPER = {name: Path(resolve_config_path(f"torchvision/{name}.yaml")) for name in (
    "faster_rcnn_R_50_FPN_1x", "faster_rcnn_R_50_FPN_carafe_1x", "mask_rcnn_R_50_FPN_1x",
    "mask_rcnn_R_50_FPN_carafe_1x")}


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_configs_hold_the_papers_settings():
    for path in PAPER.values():
        cfg = load_torchvision_config(path)
        assert (cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN) == (800, 1333)
        assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (800, 1333)
        s, carafe = cfg.SOLVER, "carafe" in path.stem
        assert (s.BASE_LR, s.MOMENTUM, s.WEIGHT_DECAY, s.IMS_PER_BATCH) == (0.02, 0.9, 1e-4, 16)
        assert (s.EPOCHS, s.STEPS, s.GAMMA) == (12, [8, 11], 0.1)
        # from the authors' release (mmdetection v1): warmup from 1/3, gradient norm clipped at 35, 2000 proposals
        assert (s.WARMUP_ITERS, s.WARMUP_FACTOR) == (500, pytest.approx(1 / 3))
        assert dict(s.CLIP_GRADIENTS) == {"ENABLED": True, "CLIP_VALUE": 35.0, "NORM_TYPE": 2.0}
        assert (cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN, cfg.MODEL.RPN.POST_NMS_TOPK_TEST) == (2000, 1000)
        # and its backbone BatchNorm: statistics frozen, affine trained (norm_eval), stem and res2 frozen
        assert (cfg.MODEL.BACKBONE.NORM, cfg.MODEL.BACKBONE.FREEZE_AT) == ("FrozenStatsBN", 2)
        assert cfg.INPUT.SIZE_DIVISIBILITY == (64 if carafe else 32)
        assert cfg.MODEL.BACKBONE.NAME == "resnet50" and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 80
        assert cfg.MODEL.FPN.UPSAMPLE == ("carafe" if carafe else "nearest")
        assert cfg.MODEL.FPN.TOP_LEVEL == ("conv" if carafe else "maxpool")
        assert cfg.MODEL.MASK_ON == path.stem.startswith("mask")
        if cfg.MODEL.MASK_ON:
            assert cfg.MODEL.ROI_MASK_HEAD.UPSAMPLE == ("carafe" if carafe else "deconv")
        assert dict(cfg.MODEL.CARAFE) == {"SCALE_FACTOR": 2, "UP_KERNEL": 5, "UP_GROUP": 1, "ENCODER_KERNEL": 3,
                                          "ENCODER_DILATION": 1, "COMPRESSED_CHANNELS": 64}


def test_the_four_paper_models():
    models = {name: build_model(load_torchvision_config(path)) for name, path in PAPER.items()}
    faster, faster_carafe = models["faster_rcnn_R_50_FPN_1x"], models["faster_rcnn_R_50_FPN_carafe_1x"]
    mask, mask_carafe = models["mask_rcnn_R_50_FPN_1x"], models["mask_rcnn_R_50_FPN_carafe_1x"]
    assert type(faster) is FasterRCNN and type(mask) is MaskRCNN
    # torchvision's own fasterrcnn_resnet50_fpn has 41,755,286 parameters with 91 classes and FrozenBN; ours has 81
    # classes and the release's BatchNorm, whose affine weights and biases are parameters (2 x 26,560 channels)
    assert count(faster) == 41_755_286 - 10 * (1024 + 4 * 1024 + 5) + 2 * 26_560
    packs = [m for m in faster_carafe.backbone.fpn.modules() if isinstance(m, CARAFEPack)]
    assert [count(p) for p in packs] == [74_148] * 4
    neck_extra = (2048 * 256 * 9 + 256) + (256 * 256 * 9 + 256) + 4 * 74_148
    assert count(faster_carafe) - count(faster) == neck_extra
    assert isinstance(mask.roi_heads.mask_predictor, MaskUpsamplePredictor)
    assert isinstance(mask.roi_heads.mask_predictor.upsample, DeconvUpsample)
    assert isinstance(mask_carafe.roi_heads.mask_predictor.upsample, CARAFEPack)
    assert count(mask_carafe) - count(mask) == neck_extra - (256 * 256 * 4 + 256) + 74_148
    assert all(isinstance(m, Interpolate) and m.mode == "nearest" for m in mask.backbone.fpn.upsample_modules)
    assert mask_carafe.transform.size_divisible == 64 and mask.transform.size_divisible == 32
    # stem and res2 frozen (FREEZE_AT 2); the BatchNorm statistics frozen everywhere (the test below trains them)
    body = mask_carafe.backbone.body
    assert not any(p.requires_grad for p in body.conv1.parameters())
    assert not any(p.requires_grad for p in body.layer1.parameters())
    assert all(p.requires_grad for p in body.layer2.parameters())


@torch.no_grad()
def test_tiny_model_runs_in_train_and_eval_mode(shapes_root):
    cfg = load_torchvision_config(resolve_config_path("torchvision/tiny_shapes_mask_rcnn_carafe.yaml"),
                                  ["INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "96"])
    model = build_model(cfg)
    dataset = CocoDetectionDataset(shapes_root, "val", with_masks=True)
    images, targets = zip(*[dataset[i] for i in range(2)])
    model.train()
    losses = model(list(images), list(targets))
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    model.eval()
    outputs = model(list(images))
    assert outputs[0]["masks"].shape[1:] == (1, 96, 96)


@pytest.mark.parametrize("name", ["tiny_shapes_mask_rcnn_carafe", "tiny_shapes_mask_rcnn"])
@torch.no_grad()
def test_models_script_and_match_eager(name, shapes_root):
    """torch.jit.script compiles the detectors (CARAFEFPN, the CARAFE mask head); the script's detections are
    the eager model's."""
    cfg = load_torchvision_config(resolve_config_path(f"torchvision/{name}.yaml"),
                                  ["INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "96"])
    model = build_model(cfg).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation of torch.jit.script; torchvision's note on its outputs
        scripted = torch.jit.script(model)
        dataset = CocoDetectionDataset(shapes_root, "val", with_masks=True)
        images = [dataset[i][0] for i in range(2)]
        expected, (_, detections) = model(images), scripted(images)
    for a, b in zip(expected, detections):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_transform_sizes_follow_the_mode():
    cfg = load_torchvision_config(resolve_config_path("torchvision/tiny_shapes_mask_rcnn_carafe.yaml"),
                                  ["INPUT.MIN_SIZE_TRAIN", "128", "INPUT.MAX_SIZE_TRAIN", "160",
                                   "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "112"])
    model = build_model(cfg)
    assert (model.train().transform.min_size, model.transform.max_size) == ((128,), 160)
    assert (model.eval().transform.min_size, model.transform.max_size) == ((96,), 112)


@torch.no_grad()
def test_mask_rcnn_inference_on_an_image_without_detections(shapes_root):
    """No box passes the score threshold, so the CARAFE mask head receives an empty batch of RoI features."""
    cfg = load_torchvision_config(resolve_config_path("torchvision/tiny_shapes_mask_rcnn_carafe.yaml"),
                                  ["INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "96",
                                   "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "1.0"])
    model = build_model(cfg).eval()
    image, _ = CocoDetectionDataset(shapes_root, "val", with_masks=True)[0]
    (output,) = model([image])
    assert output["boxes"].shape == (0, 4) and output["masks"].shape == (0, 1, 96, 96)


def test_unknown_config_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("_BASE_: " + str(CONFIG_DIR / "torchvision" / "Base-RCNN-FPN.yaml") + "\nMODEL:\n  FPN:\n"
                    "    UPSAMPLER: carafe\n")
    with pytest.raises(ConfigError, match="unknown config key 'MODEL.FPN.UPSAMPLER'"):
        load_torchvision_config(path)
    with pytest.raises(ConfigError, match="unknown config key 'SOLVER.LR'"):
        load_torchvision_config(PAPER["mask_rcnn_R_50_FPN_1x"], ["SOLVER.LR", "0.1"])


def test_a_detectron2_config_points_to_its_engine():
    with pytest.raises(ConfigError, match="looks like a detectron2 config: run carafe-det-train with --engine "
                                          "detectron2"):
        load_torchvision_config(resolve_config_path("detectron2/mask_rcnn_R_50_FPN_carafe_1x.yaml"))


@pytest.mark.parametrize("key,value,message", [
    ("MODEL.FPN.UPSAMPLE", "bilinear", "MODEL.FPN.UPSAMPLE 'bilinear' is not one of nearest, carafe"),
    ("MODEL.ROI_MASK_HEAD.UPSAMPLE", "pixelshuffle", "MODEL.ROI_MASK_HEAD.UPSAMPLE 'pixelshuffle' is not one of "
                                                     "deconv, nearest, carafe"),
    ("MODEL.BACKBONE.NAME", "vgg16", "MODEL.BACKBONE.NAME 'vgg16' is not one of resnet18, resnet34, resnet50, "
                                     "resnet101, tiny"),
])
def test_bad_config_values_are_named(key, value, message):
    with pytest.raises(ConfigError, match=message):
        load_torchvision_config(resolve_config_path("torchvision/tiny_shapes_mask_rcnn_carafe.yaml"), [key, value])


def test_imagenet_weights_are_read_from_a_path_and_checked(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    cfg = load_torchvision_config(resolve_config_path("torchvision/tiny_shapes_mask_rcnn_carafe.yaml"),
                                  ["MODEL.BACKBONE.NAME", "resnet18", "MODEL.BACKBONE.WEIGHTS", str(path)])
    model = build_model(cfg)
    torch.testing.assert_close(model.backbone.body.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    cfg.MODEL.BACKBONE.NORM = "FrozenBN"  # the paper's setting: ImageNet statistics, frozen
    frozen = build_model(cfg).backbone.body
    torch.testing.assert_close(frozen.layer2[0].bn1.running_var, reference.layer2[0].bn1.running_var)
    cfg.MODEL.BACKBONE.NAME = "resnet34"
    with pytest.raises(CheckpointError, match=f"MODEL.BACKBONE.WEIGHTS: {path} does not fit"):
        build_model(cfg)
    cfg.MODEL.BACKBONE.WEIGHTS = str(tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="MODEL.BACKBONE.WEIGHTS: file not found"):
        build_model(cfg)


def _checkpoint(cfg, path):
    model = build_model(cfg)
    save_checkpoint(path, {"kind": checkpoint_kind(cfg), "model": model.state_dict(), "config": cfg.to_dict(),
                           "iteration": 7})
    return model


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    tiny = resolve_config_path("torchvision/tiny_shapes_mask_rcnn_carafe.yaml")
    faster = load_torchvision_config(tiny, ["MODEL.MASK_ON", "false"])
    _checkpoint(faster, tmp_path / "faster.pth")
    mask = load_torchvision_config(tiny, ["MODEL.WEIGHTS", str(tmp_path / "faster.pth"), "OUTPUT_DIR",
                                          str(tmp_path / "run")])
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'faster.pth'} is a checkpoint of 'carafe-det/faster_rcnn', "
                                              f"expected 'carafe-det/mask_rcnn'"):
        DetectionTrainer(mask).resume_or_load(resume=False)


def test_checkpoint_of_another_variant_names_the_file_and_its_settings(tmp_path):
    baseline = load_torchvision_config(resolve_config_path("torchvision/tiny_shapes_mask_rcnn.yaml"))
    _checkpoint(baseline, tmp_path / "baseline.pth")
    carafe = load_torchvision_config(resolve_config_path("torchvision/tiny_shapes_mask_rcnn_carafe.yaml"))
    state = torch.load(tmp_path / "baseline.pth", weights_only=True)
    with pytest.raises(CheckpointError) as error:
        load_model_weights(build_model(carafe), state, tmp_path / "baseline.pth")
    message = str(error.value)
    assert str(tmp_path / "baseline.pth") in message and "holds weights of another model" in message
    assert "MODEL.FPN.UPSAMPLE 'nearest'" in message and "MODEL.ROI_MASK_HEAD.UPSAMPLE 'deconv'" in message


def test_checkpoint_that_is_not_one_is_named(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint")
    cfg = load_torchvision_config(resolve_config_path("torchvision/tiny_shapes_mask_rcnn_carafe.yaml"),
                                  ["MODEL.WEIGHTS", str(path), "OUTPUT_DIR", str(tmp_path / "run")])
    with pytest.raises(CheckpointError, match=f"{path} is not a readable checkpoint"):
        DetectionTrainer(cfg).resume_or_load(resume=False)


def test_schedule_converts_epochs_warms_up_and_steps():
    solver = load_torchvision_config(PAPER["mask_rcnn_R_50_FPN_carafe_1x"]).SOLVER
    per_epoch = 7329  # COCO train2017 at 16 images per batch
    assert schedule_length(solver, per_epoch) == 87_948
    factor = {i: lr_factor(solver, i, per_epoch) for i in (0, 250, 500, 58_631, 58_632, 80_618, 80_619)}
    assert factor[0] == pytest.approx(1 / 3) and factor[250] == pytest.approx(1 / 3 * 0.5 + 0.5)
    assert factor[500] == factor[58_631] == pytest.approx(1)  # steps at epochs 8 and 11: 58,632 and 80,619
    assert factor[58_632] == factor[80_618] == pytest.approx(0.1) and factor[80_619] == pytest.approx(0.01)
    solver.MAX_ITER = 100
    assert schedule_length(solver, per_epoch) == 100


def test_release_batchnorm_keeps_its_statistics_and_trains_its_affine(shapes_root):
    """NORM FrozenStatsBN (mmdetection's norm_eval with trainable affine): a training step leaves every running
    statistic as it was, changes the BatchNorm weights of the stages after FREEZE_AT and nothing before them."""
    cfg = load_torchvision_config(resolve_config_path("torchvision/tiny_shapes_mask_rcnn_carafe.yaml"),
                                  ["MODEL.BACKBONE.NORM", "FrozenStatsBN", "MODEL.BACKBONE.FREEZE_AT", "2"])
    torch.manual_seed(0)
    model = build_model(cfg)
    body = model.backbone.body
    with torch.no_grad():  # statistics unlike a batch's, so that normalizing with the batch's would show
        for module in body.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    before = {k: v.clone() for k, v in body.state_dict().items()}
    dataset = CocoDetectionDataset(shapes_root, "val", with_masks=True)
    images, targets = zip(*[dataset[i] for i in range(2)])
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    sum(model(list(images), list(targets)).values()).backward()
    optimizer.step()
    after = body.state_dict()
    statistics = [k for k in before if k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert statistics and all(torch.equal(before[k], after[k]) for k in statistics)
    trained = [k for k in before if k.startswith(("layer2.", "layer3.", "layer4.")) and "bn" in k
               and k.endswith(("weight", "bias"))]
    assert trained and all(not torch.equal(before[k], after[k]) for k in trained)
    frozen = [k for k in before if k.startswith(("conv1.", "bn1.", "layer1."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)


def test_gradients_are_clipped_to_the_configured_norm():
    from types import SimpleNamespace

    from carafe_det.torchvision_engine.trainer import train_step

    class Doubling(torch.nn.Module):  # a "detector" whose loss dict has one loss with a large gradient
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(4))

        def forward(self, images, targets):
            return {"loss": 100.0 * self.weight.sum()}

    for enabled, expected in ((False, 200.0), (True, 35.0)):  # gradient 100 per element: norm 200
        model = Doubling()
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        clip = SimpleNamespace(ENABLED=enabled, CLIP_VALUE=35.0, NORM_TYPE=2.0)
        train_step(model, optimizer, torch.amp.GradScaler("cpu", enabled=False), [], [], "cpu", clip=clip)
        assert (1 - model.weight.detach()).norm().item() == pytest.approx(expected, rel=1e-5)


def test_coco_scoring_of_the_ground_truth_is_perfect_and_of_nothing_is_zero(shapes_root):
    from pycocotools import mask as mask_util

    dataset = CocoDetectionDataset(shapes_root, "val", with_masks=True)
    results = []
    for annotation in dataset.coco.dataset["annotations"]:
        rle = mask_util.merge(mask_util.frPyObjects(annotation["segmentation"], 96, 96))
        rle["counts"] = rle["counts"].decode("ascii")
        results.append({"image_id": annotation["image_id"], "category_id": annotation["category_id"],
                        "bbox": annotation["bbox"], "score": 1.0, "segmentation": rle})
    perfect = score(dataset, results, with_masks=True)
    assert perfect["bbox"]["AP"] == pytest.approx(100) and perfect["segm"]["AP50"] == pytest.approx(100)
    wrong_class = [{**r, "category_id": r["category_id"] % 3 + 1} for r in results]
    assert score(dataset, wrong_class, with_masks=True)["bbox"]["AP50"] == pytest.approx(0)
    assert score(dataset, [], with_masks=True)["segm"]["AP"] == 0
