"""carafe-det-step-benchmark, the command a GPU session runs for the paper configs, as a CPU smoke test."""

from __future__ import annotations

import json

import torch

from carafe_det.cli.step_benchmark import main
from carafe_det.torchvision_engine.benchmark import random_batch


def test_random_batch_boxes_and_masks_fit_the_images():
    images, targets = random_batch(2, (100, 120), 5, 80, True, torch.Generator().manual_seed(0))
    for image, target in zip(images, targets):
        boxes = target["boxes"]
        assert image.shape == (3, 100, 120) and boxes.shape == (5, 4)
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert (boxes[:, 2] <= 120).all() and (boxes[:, 3] <= 100).all()
        assert target["masks"].shape == (5, 100, 120) and target["masks"].sum() > 0
        assert target["labels"].min() >= 1 and target["labels"].max() <= 80


def test_benchmark_of_baseline_and_carafe_writes_json(tmp_path, capsys):
    output = tmp_path / "steps.json"
    assert main(["--device", "cpu", "--size", "96", "128", "--objects", "2", "--warmup", "0", "--steps", "1",
                 "--output", str(output), "torchvision/tiny_shapes_mask_rcnn.yaml",
                 "torchvision/tiny_shapes_mask_rcnn_carafe.yaml"]) == 0
    report = json.loads(output.read_text())
    baseline, carafe = report["results"]
    assert baseline["model"] == "mask FPN nearest, mask deconv" and carafe["model"] == "mask FPN carafe, mask carafe"
    assert carafe["neck_parameters"] > baseline["neck_parameters"]
    assert baseline["padded_input"] == [128, 128] and carafe["padded_input"] == [128, 128]
    assert all(r["median_step_s"] > 0 and r["peak_memory_gib"] is None for r in report["results"])
    assert "step (s)" in capsys.readouterr().out
