"""carafe_ops.nn: the nn.Upsample-style module and the one-call replacement in existing models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import carafe_ops
from carafe_ops.nn import Upsample, replace_upsampling

torchvision = pytest.importorskip("torchvision")


def test_upsample_module_sizes():
    x = torch.randn(2, 8, 7, 9)
    assert Upsample(8, scale_factor=3, compressed_channels=4)(x).shape == (2, 8, 21, 27)
    assert Upsample(8, size=(13, 17), compressed_channels=4)(x).shape == (2, 8, 13, 17)
    assert Upsample(8, size=10, compressed_channels=4)(x).shape == (2, 8, 10, 10)
    assert Upsample(8, compressed_channels=4)(x, size=(14, 17)).shape == (2, 8, 14, 17)


def test_replace_torchvision_fpn_in_a_detector():
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=200, max_size=333).eval()
    fpn = model.backbone.fpn
    before = {k: v.clone() for k, v in fpn.state_dict().items()}
    replace_upsampling(model)
    assert type(fpn).__name__ == "CARAFEFeaturePyramidNetwork" and len(fpn.carafe_upsamplers) == 3
    # the FPN keeps its weights; the three CARAFEPacks are new (74,148 parameters each at C 256, C_m 64)
    assert all(torch.equal(fpn.state_dict()[k], v) for k, v in before.items())
    assert [sum(p.numel() for p in up.parameters()) for up in fpn.carafe_upsamplers] == [74148] * 3
    # odd image sizes need no padding: each step upsamples to its lateral's size
    features = {name: torch.randn(1, c, h, w) for name, c, h, w in
                [("0", 256, 50, 83), ("1", 512, 25, 42), ("2", 1024, 13, 21), ("3", 2048, 7, 11)]}
    inner = {k: v for k, v in features.items()}
    out = fpn(inner)
    assert [tuple(v.shape[-2:]) for v in out.values()] == [(50, 83), (25, 42), (13, 21), (7, 11), (4, 6)]
    with torch.no_grad():
        detections = model([torch.rand(3, 190, 251)])
    assert set(detections[0]) == {"boxes", "labels", "scores"}


def test_replace_fpn_step_is_carafe():
    """The replaced top-down step is exactly lateral + CARAFEPack(top, size=lateral size)."""
    fpn = torchvision.ops.FeaturePyramidNetwork([4, 8], 8).eval()
    replace_upsampling(fpn, compressed_channels=4)
    x = {"a": torch.randn(1, 4, 9, 11), "b": torch.randn(1, 8, 5, 6)}
    out = fpn(x)
    top = fpn.get_result_from_inner_blocks(x["b"], 1)
    inner = fpn.get_result_from_inner_blocks(x["a"], 0) + fpn.carafe_upsamplers[0](top, size=(9, 11))
    torch.testing.assert_close(out["a"], fpn.get_result_from_layer_blocks(inner, 0))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.up1 = nn.Upsample(scale_factor=2, mode="bilinear")
        self.block = nn.Sequential(nn.Conv2d(6, 10, 1), nn.Upsample(scale_factor=(3, 3)))
        self.up3 = nn.Upsample(size=(40, 50))

    def forward(self, x):
        return self.up3(self.block(self.up1(self.conv1(x))))


def test_replace_nn_upsample_modules_and_train():
    model = Decoder()
    x = torch.randn(2, 3, 5, 6)
    replace_upsampling(model, example_inputs=(x,), up_kernel=3, compressed_channels=4)
    assert isinstance(model.up1, Upsample) and model.up1.channels == 6 and model.up1.scale_factor == 2
    assert isinstance(model.block[1], Upsample) and model.block[1].channels == 10 and model.block[1].scale_factor == 3
    assert isinstance(model.up3, Upsample) and model.up3.size == (40, 50)
    out = model(x)
    assert out.shape == (2, 10, 40, 50)
    out.square().mean().backward()
    assert model.up1.content_encoder.weight.grad is not None


def test_replace_upsampling_errors():
    with pytest.raises(ValueError, match="need example_inputs"):
        replace_upsampling(Decoder())
    with pytest.raises(ValueError, match="found no torchvision FeaturePyramidNetwork and no nn.Upsample"):
        replace_upsampling(nn.Sequential(nn.Conv2d(3, 3, 1)))
    fractional = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Upsample(scale_factor=1.5))
    with pytest.raises(ValueError, match="integer scale factor"):
        replace_upsampling(fractional, example_inputs=(torch.randn(1, 3, 4, 4),))


def test_nn_is_reachable_from_the_package():
    assert carafe_ops.nn.Upsample is Upsample
