"""carafe-det-convert for the torchvision engine: mmdetection v2 state dicts in its exact key layout and shapes
(tests/mmdet_layout.py) converted, loaded strictly, every tensor used, the class rows in torchvision's order, the
neck giving FPN_CARAFE's (and FPN's) output, mmdetection's inference settings (anchors, aligned RoIAlign, level
mapping) and the command line's errors."""

from __future__ import annotations

import math

import pytest
import torch
from carafe_engine import load_checkpoint
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import roi_align

from carafe_det.cli.convert import main as convert_main
from carafe_det.configs import resolve_config_path
from carafe_det.convert import (COCO_CLASS_NAMES, VARIANTS, ConversionError, convert_checkpoint, convert_state_dict,
                                detect_variant, split_checkpoint)
from carafe_det.inference import TorchvisionPredictor
from carafe_det.torchvision_engine import build_model, checkpoint_kind, load_model_weights, load_torchvision_config
from carafe_det.torchvision_engine.layers import (AlignedMultiScaleRoIAlign, ExactAnchorGenerator, ExactTransform,
                                                  paste_masks_exact)
from mmdet_layout import VARIANT_LAYOUTS, mmdet_state_dict, random_features, reference_neck

NAMES = [v.name for v in VARIANTS]


@pytest.fixture(scope="module")
def sources():
    """One mmdetection state dict per model (generated once: ResNet-50 sizes)."""
    return {name: mmdet_state_dict(*VARIANT_LAYOUTS[name], seed=i) for i, name in enumerate(NAMES)}


def write_mmdet(path, state, meta=None):
    torch.save({"meta": meta or {"mmdet_version": "2.0.0", "CLASSES": tuple(COCO_CLASS_NAMES)},
                "state_dict": state}, path)
    return path


def tv_config(name: str, *opts):
    return load_torchvision_config(resolve_config_path(f"torchvision/mmdet/{name}.yaml"), list(opts))


def test_variant_is_read_from_the_keys(sources):
    for name, state in sources.items():
        assert detect_variant(state).name == name
    # Mask R-CNN with FPN_CARAFE but the deconvolution mask head is none of the four
    mixed = {k: v for k, v in sources["mask_rcnn_r50_fpn_carafe_1x_coco"].items()
             if not k.startswith("roi_head.mask_head.upsample.")}
    mixed["roi_head.mask_head.upsample.weight"] = torch.zeros(256, 256, 2, 2)
    with pytest.raises(ConversionError, match="none of the supported mmdetection models.*mask head upsample deconv"):
        detect_variant(mixed)


def test_not_an_mmdet_checkpoint_is_refused(sources):
    with pytest.raises(ConversionError, match="not an mmdetection Faster/Mask R-CNN FPN checkpoint: it lacks "
                                              "backbone.conv1.weight"):
        split_checkpoint({"state_dict": {"conv.weight": torch.zeros(1)}}, "x.pth")
    with pytest.raises(ConversionError, match="already a carafe-det checkpoint"):
        split_checkpoint({"kind": "carafe-det/mask_rcnn", "model": {}}, "x.pth")
    with pytest.raises(ConversionError, match="holds a list"):
        split_checkpoint([1, 2], "x.pth")
    # a tensor no part of the model holds (a ResNet-101 block) is named
    state = dict(sources["faster_rcnn_r50_fpn_1x_coco"])
    state["backbone.layer3.6.conv1.weight"] = torch.zeros(256, 1024, 1, 1)
    with pytest.raises(ConversionError, match="does not fit.*backbone.body.layer3.6.conv1.weight"):
        from carafe_det.convert import check_fits

        check_fits(convert_state_dict(state, "torchvision"), build_model(tv_config("faster_rcnn_r50_fpn_1x_coco")),
                   "x.pth", "cfg")
    # wrong class counts between the heads
    state = dict(sources["faster_rcnn_r50_fpn_1x_coco"])
    state["roi_head.bbox_head.fc_reg.weight"] = torch.zeros(4 * 79, 1024)
    with pytest.raises(ConversionError, match="fc_reg.weight has 316 rows"):
        convert_state_dict(state, "torchvision")
    with pytest.raises(ValueError, match="engine must be one of torchvision, detectron2; got 'mmdet'"):
        convert_state_dict(sources["faster_rcnn_r50_fpn_1x_coco"], "mmdet")


def test_meta_with_numpy_values_is_read(tmp_path):
    """Training hooks can leave numpy scalars and arrays in meta; weights_only loading still reads the file."""
    import numpy as np

    from carafe_det.convert import REQUIRED_KEYS, read_mmdet_checkpoint

    state = {key: torch.zeros(1) for key in REQUIRED_KEYS}
    torch.save({"meta": {"hook_msgs": {"best_score": np.float64(0.386), "curve": np.arange(3)}, "epoch": 12},
                "state_dict": state}, tmp_path / "m.pth")
    loaded, meta = read_mmdet_checkpoint(tmp_path / "m.pth")
    assert sorted(loaded) == sorted(REQUIRED_KEYS) and meta["hook_msgs"]["best_score"] == 0.386


def find_equal(tensor, candidates):
    return [name for name, other in candidates.items() if other.shape == tensor.shape and torch.equal(other, tensor)]


@pytest.mark.parametrize("name", NAMES)
def test_converts_and_loads_strictly(tmp_path, sources, name):
    source = sources[name]
    result = convert_checkpoint(write_mmdet(tmp_path / "mmdet.pth", source), tmp_path / "tv.pth", "torchvision")
    assert result.conversion.variant.name == name
    assert result.config_file.endswith(f"torchvision/mmdet/{name}.yaml")

    # the trainer's --eval-only path: its config, the kind check and the strict load
    cfg = tv_config(name)
    state = load_checkpoint(tmp_path / "tv.pth", kind=checkpoint_kind(cfg))
    model = build_model(cfg)
    load_model_weights(model, state, tmp_path / "tv.pth")
    assert state["class_names"] == COCO_CLASS_NAMES and len(state["category_ids"]) == 80
    assert state["config"]["MODEL"]["ROI_BOX_HEAD"]["POOLER_TYPE"] == "ROIAlignV2"
    loaded = model.state_dict()

    # every source tensor is in the model, unchanged (the class tensors: their rows, checked below); the only ones
    # left out are BatchNorm's counters
    class_keys = ("roi_head.bbox_head.fc_cls.", "roi_head.bbox_head.fc_reg.", "roi_head.mask_head.conv_logits.")
    counters = [k for k in source if k.endswith("num_batches_tracked")]
    assert sorted(result.conversion.ignored) == sorted(counters)
    for key, tensor in source.items():
        if key.endswith("num_batches_tracked") or key.startswith(class_keys):
            continue
        assert len(find_equal(tensor, loaded)) == 1, key
    assert len(loaded) == len(source) - len(counters)

    # classes: mmdetection's background (last row, value 1080) first, class i (1000 + i) at row i + 1
    cls = loaded["roi_heads.box_predictor.cls_score.weight"].round()
    assert cls[0].eq(1080).all() and all(cls[i + 1].eq(1000 + i).all() for i in range(80))
    reg = loaded["roi_heads.box_predictor.bbox_pred.weight"]
    assert reg[:4].eq(0).all()  # torchvision's background box deltas: never read
    assert all(reg[4 * (i + 1): 4 * (i + 2)].round().eq(1000 + i).all() for i in range(80))
    assert torch.equal(reg[4:], source["roi_head.bbox_head.fc_reg.weight"])
    if cfg.MODEL.MASK_ON:
        logits = loaded["roi_heads.mask_predictor.mask_fcn_logits.weight"]
        assert logits[0].eq(0).all()
        assert torch.equal(logits[1:], source["roi_head.mask_head.conv_logits.weight"])
        assert result.conversion.zero_rows == ["roi_heads.box_predictor.bbox_pred.weight",
                                               "roi_heads.box_predictor.bbox_pred.bias",
                                               "roi_heads.mask_predictor.mask_fcn_logits.weight",
                                               "roi_heads.mask_predictor.mask_fcn_logits.bias"]

    # the converted neck is the authors' neck with the same weights
    carafe_fpn = VARIANT_LAYOUTS[name][1]
    features = random_features()
    with torch.no_grad():
        ours = model.backbone.fpn(features)
        theirs = reference_neck(source, features, carafe_fpn)
    assert [o.shape for o in ours] == [t.shape for t in theirs] and len(ours) == 5
    for level, (o, t) in enumerate(zip(ours, theirs)):
        torch.testing.assert_close(o, t, rtol=1e-4, atol=1e-5, msg=f"P{level + 2}")


def test_converted_checkpoint_predicts_and_keeps_bare_state_dicts(tmp_path, sources):
    """A bare state dict converts too; carafe-det-predict's loader reads the result (its own config inside)."""
    name = "mask_rcnn_r50_fpn_carafe_1x_coco"
    torch.save(sources[name], tmp_path / "bare.pth")
    assert convert_main([str(tmp_path / "bare.pth"), "--output", str(tmp_path / "tv.pth")]) == 0
    predictor = TorchvisionPredictor(tmp_path / "tv.pth", opts=["INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST",
                                                                 "96"], device="cpu")
    detections = predictor(torch.randint(0, 255, (70, 90, 3), dtype=torch.uint8).numpy())
    assert set(detections.classes) <= set(COCO_CLASS_NAMES)
    assert detections.masks is None or detections.masks.shape[1:] == (70, 90)


def test_eval_only_reads_a_converted_checkpoint(tmp_path, shapes_root):
    """carafe-det-train --eval-only evaluates a converted checkpoint (3 classes, the shapes dataset's names in its
    meta) with the mmdet config."""
    from carafe_det.cli.train import main as train_main

    names = ["circle", "square", "triangle"]
    state = mmdet_state_dict(True, True, "carafe", num_classes=3)
    write_mmdet(tmp_path / "mmdet.pth", state, {"CLASSES": names})
    opts = ["MODEL.ROI_HEADS.NUM_CLASSES", "3"]
    result = convert_checkpoint(tmp_path / "mmdet.pth", tmp_path / "tv.pth", "torchvision", opts=opts)
    assert result.class_names == names and "category_ids" not in load_checkpoint(tmp_path / "tv.pth")
    status = train_main(["--config-file", "torchvision/mmdet/mask_rcnn_r50_fpn_carafe_1x_coco.yaml", "--eval-only",
                         "MODEL.WEIGHTS", str(tmp_path / "tv.pth"), "DATASETS.ROOT", str(shapes_root),
                         "DATASETS.TEST", "val", "OUTPUT_DIR", str(tmp_path / "eval"), "MODEL.DEVICE", "cpu",
                         "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "96", *opts])
    assert status in (0, None)
    assert (tmp_path / "eval" / "eval.json").is_file()


def test_mmdet_configs_hold_mmdets_inference_settings():
    for variant in VARIANTS:
        cfg = tv_config(variant.name)
        m = cfg.MODEL
        assert (m.MASK_ON, m.FPN.UPSAMPLE) == (variant.mask_on, variant.fpn_upsample)
        assert m.FPN.TOP_LEVEL == ("conv" if variant.fpn_upsample == "carafe" else "maxpool")
        assert (m.ANCHOR_GENERATOR.STYLE, cfg.INPUT.RESIZE_ROUNDING, m.ROI_MASK_HEAD.PASTE) == ("exact", "nearest",
                                                                                               "exact")
        for head in (m.ROI_BOX_HEAD, m.ROI_MASK_HEAD):
            assert (head.POOLER_TYPE, head.POOLER_SAMPLING_RATIO) == ("ROIAlignV2", 0)
        assert (m.RPN.PRE_NMS_TOPK_TEST, m.RPN.POST_NMS_TOPK_TEST, m.RPN.NMS_THRESH) == (1000, 1000, 0.7)
        assert (m.ROI_HEADS.SCORE_THRESH_TEST, m.ROI_HEADS.NMS_THRESH_TEST, m.ROI_HEADS.DETECTIONS_PER_IMAGE) == (
            0.05, 0.5, 100)
        assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, cfg.TEST.IMS_PER_BATCH) == (800, 1333, 1)
        assert cfg.INPUT.SIZE_DIVISIBILITY == (64 if variant.fpn_upsample == "carafe" else 32)  # mmdet's Pad
        model = build_model(cfg)
        # torchvision normalizes [0, 1] pixels: x 255 these are mmdetection's RGB mean and std
        assert [round(v * 255, 3) for v in model.transform.image_mean] == [123.675, 116.28, 103.53]
        assert [round(v * 255, 3) for v in model.transform.image_std] == [58.395, 57.12, 57.375]
        if m.MASK_ON:
            assert m.ROI_MASK_HEAD.UPSAMPLE == variant.mask_upsample


def mmdet_anchors(stride: int, height: int, width: int) -> torch.Tensor:
    """mmdetection v2's AnchorGenerator from its definition: base size = stride, scale 8, ratios (h / w) 0.5, 1, 2,
    centre offset 0, no rounding, the ratios' anchors at each position (row-major)."""
    base = []
    for ratio in (0.5, 1.0, 2.0):
        w, h = 8 * stride / math.sqrt(ratio), 8 * stride * math.sqrt(ratio)
        base.append([-w / 2, -h / 2, w / 2, h / 2])
    base = torch.tensor(base)
    ys, xs = torch.meshgrid(torch.arange(height) * stride, torch.arange(width) * stride, indexing="ij")
    shifts = torch.stack([xs, ys, xs, ys], -1).reshape(-1, 1, 4).float()
    return (shifts + base).reshape(-1, 4)


def test_exact_anchors_are_mmdets():
    model = build_model(tv_config("faster_rcnn_r50_fpn_1x_coco"))
    generator = model.rpn.anchor_generator
    assert isinstance(generator, ExactAnchorGenerator)
    # an 800 x 1216 image padded to 32: P5 is 25 x 38, P6 (max-pooled) 13 x 19, whose stride is still 64
    sizes = [(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)]
    features = [torch.zeros(1, 1, h, w) for h, w in sizes]
    anchors = generator(ImageList(torch.zeros(1, 3, 800, 1216), [(800, 1200)]), features)[0]
    expected = torch.cat([mmdet_anchors(4 * 2 ** i, h, w) for i, (h, w) in enumerate(sizes)])
    torch.testing.assert_close(anchors, expected)


def test_aligned_roi_pooler_is_mmdets_roi_extractor():
    """ROIAlignV2 pools each box at mmdetection's level floor(log2(sqrt(wh) / 56)) with aligned RoIAlign and
    adaptive sampling (mmcv's RoIAlign(aligned=True, sampling_ratio=0))."""
    model = build_model(tv_config("faster_rcnn_r50_fpn_carafe_1x_coco"))
    pooler = model.roi_heads.box_roi_pool
    assert isinstance(pooler, AlignedMultiScaleRoIAlign) and pooler.sampling_ratio == 0
    generator = torch.Generator().manual_seed(0)
    features = {str(i): torch.randn(1, 4, 64 // 2 ** i, 96 // 2 ** i, generator=generator) for i in range(4)}
    sides = torch.tensor([20.0, 60.0, 111.0, 113.0, 150.0, 230.0, 250.0])
    corners = torch.rand(len(sides), 2, generator=generator) * 40
    boxes = torch.cat([corners, corners + sides[:, None] * torch.tensor([1.0, 0.8])], 1)
    pooled = pooler(features, [boxes], [(256, 384)])
    for box, result in zip(boxes, pooled):
        scale = math.sqrt((box[2] - box[0]) * (box[3] - box[1]))
        level = int(min(3, max(0, math.floor(math.log2(scale / 56 + 1e-6)))))
        expected = roi_align(features[str(level)], [box[None]], 7, 1 / 4 / 2 ** level, 0, aligned=True)[0]
        torch.testing.assert_close(result, expected)


def test_exact_transform_rounds_the_size_and_pastes_at_the_box():
    model = build_model(tv_config("mask_rcnn_r50_fpn_1x_coco")).eval()
    transform = model.transform
    assert isinstance(transform, ExactTransform) and transform.round_size and transform.exact_paste
    # 480 x 643 at scale 800 / 480: 1071.67 wide -> 1072 (mmcv's imrescale rounds; torchvision's floor gives 1071)
    resized, _ = transform.resize(torch.rand(3, 480, 643))
    assert resized.shape[-2:] == (800, 1072)
    assert build_model(tv_config("mask_rcnn_r50_fpn_1x_coco", "INPUT.RESIZE_ROUNDING", "floor")).transform.resize(
        torch.rand(3, 480, 643))[0].shape[-2:] == (800, 1071)

    # a mask whose value is its column index: the pixel centre x + 0.5 reads column ((x + 0.5 - x0) / w) * 28 - 0.5
    mask = torch.arange(28.0).expand(28, 28)[None, None]
    box = torch.tensor([[10.3, 5.2, 70.9, 40.1]])
    pasted = paste_masks_exact(mask, box, 50, 90)[0, 0]
    xs = torch.arange(90) + 0.5
    column = (xs - 10.3) / (70.9 - 10.3) * 28 - 0.5
    inside = (column >= 0) & (column <= 27)
    torch.testing.assert_close(pasted[20, inside], column[inside])
    assert pasted[:4].eq(0).all() and pasted[:, :9].eq(0).all() and pasted[:, 72:].eq(0).all()


def run_cli(args, capsys):
    try:
        status = convert_main([str(a) for a in args])
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


def test_command_line_errors_are_one_line(tmp_path, capsys):
    status, err = run_cli([tmp_path / "missing.pth", "--output", tmp_path / "out.pth"], capsys)
    assert status == 2 and err.count("\n") == 1 and "checkpoint not found" in err and "missing.pth" in err
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    status, err = run_cli([tmp_path / "other.pth", "--output", tmp_path / "out.pth"], capsys)
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("carafe-det-convert: error:") and "not an mmdetection" in err
    (tmp_path / "text.pth").write_text("not a checkpoint")
    status, err = run_cli([tmp_path / "text.pth", "--output", tmp_path / "out.pth"], capsys)
    assert status == 2 and err.count("\n") == 1 and "not a readable checkpoint" in err
    status, err = run_cli([tmp_path / "other.pth", "--output", tmp_path / "out.pth", "--engine", "mmdet"], capsys)
    assert status == 2 and err.count("\n") == 1 and "--engine" in err
    status, err = run_cli([tmp_path / "other.pth", "--output", tmp_path / "other.pth"], capsys)
    assert status == 2 and err.count("\n") == 1 and "is the input file" in err
    assert not (tmp_path / "out.pth").exists()


def test_command_line_names_a_config_that_does_not_fit(tmp_path, capsys, sources):
    write_mmdet(tmp_path / "mmdet.pth", sources["faster_rcnn_r50_fpn_carafe_1x_coco"])
    status, err = run_cli([tmp_path / "mmdet.pth", "--output", tmp_path / "out.pth", "--config-file",
                           "torchvision/mmdet/faster_rcnn_r50_fpn_1x_coco.yaml"], capsys)
    assert status == 2 and err.count("\n") == 1
    assert "does not fit the model of" in err and "backbone.fpn.upsample_modules.0.channel_compressor.weight" in err
    status, err = run_cli([tmp_path / "mmdet.pth", "--output", tmp_path / "out.pth", "MODEL.ROI_HEADS.NUM_CLASSES", "20"],
                          capsys)
    assert status == 2 and err.count("\n") == 1 and "has 80 classes but" in err
    assert not (tmp_path / "out.pth").exists()
