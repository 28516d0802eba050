"""carafe-det-train's choice of engine, shipped config names, and carafe_det without detectron2."""

from __future__ import annotations

import subprocess

import pytest
from carafe_engine import ConfigError

from carafe_det.configs import CONFIG_DIR, declared_engine, detectron2_available, resolve_config_path
from carafe_det.cli.train import pick_engine
from conftest import PYTHON, SUBPROCESS_ENV


def test_a_torchvision_config_declares_its_engine_through_its_base_chain():
    assert declared_engine(str(resolve_config_path("torchvision/tiny_shapes_mask_rcnn.yaml"))) == "torchvision"
    assert declared_engine(str(resolve_config_path("torchvision/mask_rcnn_R_50_FPN_carafe_1x.yaml"))) == "torchvision"
    assert declared_engine(str(resolve_config_path("detectron2/mask_rcnn_R_50_FPN_carafe_1x.yaml"))) is None


def test_auto_engine_follows_the_config_then_what_is_installed():
    torchvision_config = str(resolve_config_path("torchvision/faster_rcnn_R_50_FPN_1x.yaml"))
    detectron2_config = str(resolve_config_path("detectron2/faster_rcnn_R_50_FPN_1x.yaml"))
    assert pick_engine("auto", torchvision_config) == "torchvision"
    assert pick_engine("auto", detectron2_config) == ("detectron2" if detectron2_available() else "torchvision")
    assert pick_engine("torchvision", detectron2_config) == "torchvision"


def test_shipped_config_names_resolve_and_unknown_ones_are_named():
    assert resolve_config_path("torchvision/tiny_shapes_mask_rcnn.yaml") == str(
        CONFIG_DIR / "torchvision" / "tiny_shapes_mask_rcnn.yaml")
    with pytest.raises(ConfigError, match="config file not found: nowhere.yaml"):
        resolve_config_path("nowhere.yaml")
    with pytest.raises(ConfigError, match=r"config file not found: x.yaml \(shipped configs: detectron2/"):
        resolve_config_path("x.yaml")


def test_carafe_det_works_without_detectron2(tmp_path):
    """With detectron2 made unimportable, the package, the torchvision engine and the train command's engine
    choice still work, and asking for detectron2 says how to install it."""
    script = f"""
import sys
sys.modules["detectron2"] = None  # as if it were not installed
import carafe_det, carafe_det.torchvision_engine, carafe_det.cli.predict, carafe_det.cli.visualize
from carafe_det.configs import detectron2_available
from carafe_det.cli.train import main, pick_engine
assert not detectron2_available()
assert pick_engine("auto", {str(resolve_config_path("detectron2/mask_rcnn_R_50_FPN_1x.yaml"))!r}) == "torchvision"
try:
    main(["--engine", "detectron2", "--config-file", "detectron2/mask_rcnn_R_50_FPN_1x.yaml"])
except SystemExit as exit:
    print(exit.code)
"""
    result = subprocess.run([PYTHON, "-c", script], env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and "detectron2 is not installed" in error[0]
    assert "pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'" in error[0]
