"""The tiny Mask R-CNN + CARAFE learns the generated shapes: after its default schedule (300 iterations of 8
images, 6 epochs; about 3 minutes on 2 CPU cores) its box and mask AP50 on 100 validation images are far above an
untrained model's. Measured on the 2-core development machine (deterministic; the demo gets the same numbers):
untrained 0.01 box / 0.00 mask AP50, trained 45.3 box / 45.2 mask AP50 (57.9 / 57.3 with the batch order and
flips of carafe-det's sampler before the engine's). The test asks for at most 2 before training and at least 40
after."""

from __future__ import annotations

import json

import pytest

from carafe_det.configs import resolve_config_path
from carafe_det.data.shapes import make_shapes_dataset
from carafe_det.torchvision_engine import DetectionTrainer, load_torchvision_config
from carafe_det.cli.train import main as train_main

CARAFE = "torchvision/tiny_shapes_mask_rcnn_carafe.yaml"


@pytest.mark.heavy
def test_tiny_mask_rcnn_with_carafe_learns_the_shapes(tmp_path):
    data = make_shapes_dataset(tmp_path / "shapes", train=400, val=100, size=128)
    # the model as SEED initializes it, which the training run starts from
    DetectionTrainer(load_torchvision_config(resolve_config_path(CARAFE), ["DATASETS.ROOT", str(data), "OUTPUT_DIR",
                                                                   str(tmp_path / "untrained")])).evaluate_and_write(0)
    assert train_main(["--engine", "torchvision", "--config-file", CARAFE, "DATASETS.ROOT", str(data),
                       "OUTPUT_DIR", str(tmp_path / "trained")]) == 0
    untrained = json.loads((tmp_path / "untrained" / "eval.json").read_text())
    trained = json.loads((tmp_path / "trained" / "eval.json").read_text())
    assert trained["iteration"] == 300 and trained["images"] == 100
    for kind in ("bbox", "segm"):
        assert untrained[kind]["AP50"] <= 2.0, untrained
        assert trained[kind]["AP50"] >= 40.0, trained
