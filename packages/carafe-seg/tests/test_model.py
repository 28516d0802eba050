"""The model: output shapes for any input size, each place's upsampler switchable and used, parameter counts of
the paper's models against the official layout, ImageNet weights."""

from __future__ import annotations

import itertools

import pytest
import torch
import torchvision
from carafe_ops import CARAFEPack
from carafe_ops.nn import BilinearThenCARAFE, Interpolate

from carafe_seg.config import load_seg_config
from carafe_seg.modeling import BackboneWeightsError, build_model
from csail_layout import Resnet

PLACES = ("PPM", "FPN", "FUSION")
PLACE_MODULES = {"PPM": "ppm_upsample", "FPN": "fpn_upsample", "FUSION": "fusion_upsample"}


def upsampler_opts(kinds: dict) -> list[str]:
    return [item for place, kind in kinds.items() for item in (f"MODEL.UPSAMPLER.{place}", kind)]


def tiny_model(**kinds):
    torch.manual_seed(0)
    return build_model(load_seg_config("tiny.yaml", upsampler_opts(kinds))).eval()


@pytest.mark.parametrize("combination", list(itertools.product(("bilinear", "carafe"), repeat=3)))
def test_output_shapes_for_odd_input_sizes(combination):
    model = tiny_model(**dict(zip(PLACES, combination)))
    for height, width in ((97, 131), (33, 65), (64, 64), (31, 200)):
        images = torch.randn(2, 3, height, width)
        with torch.no_grad():
            logits = model(images)
            full = model.segment(images)
            resized = model.segment(images, output_size=(50, 41))
        padded = (-(-height // 32) * 32, -(-width // 32) * 32)
        assert logits.shape == (2, 150, padded[0] // 4, padded[1] // 4)
        assert full.shape == (2, 150, height, width)
        assert resized.shape == (2, 150, 50, 41)
        assert torch.isfinite(full).all()


@pytest.mark.parametrize("place", PLACES)
def test_each_place_is_switchable_on_its_own(place):
    model = tiny_model(**{p: "carafe" if p == place else "bilinear" for p in PLACES})
    decoder = model.decoder
    for other in PLACES:
        upsamplers = getattr(decoder, PLACE_MODULES[other])
        if other != place:
            assert all(isinstance(u, Interpolate) for u in upsamplers), other
    carafe = getattr(decoder, PLACE_MODULES[place])
    if place == "PPM":  # non-integer ratios: bilinear to half the size, then CARAFE x2
        assert all(isinstance(u, BilinearThenCARAFE) and u.carafe.scale_factor == 2 for u in carafe)
        assert len(carafe) == 4
    elif place == "FPN":
        assert [u.scale_factor for u in carafe] == [2, 2, 2]
    else:  # P3, P4, P5 straight to P2's resolution
        assert [u.scale_factor for u in carafe] == [2, 4, 8]
    assert sum(isinstance(m, CARAFEPack) for m in model.modules()) == len(carafe)

    # each CARAFE of the place is used: perturbing its content encoder changes the output
    images = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        before = model.segment(images)
        packs = [m for m in carafe.modules() if isinstance(m, CARAFEPack)]
        for pack in packs:
            weight = pack.content_encoder.weight
            saved = weight.clone()
            weight.normal_(0, 0.5)
            assert not torch.allclose(model.segment(images), before, atol=1e-5), f"{place}: a CARAFEPack is unused"
            weight.copy_(saved)
        assert torch.equal(model.segment(images), before)


def conv_bn(cin, cout, k):  # conv without bias + BatchNorm (weight, bias)
    return cin * cout * k * k + 2 * cout


def official_upernet_decoder_parameters(in_channels=(256, 512, 1024, 2048), classes=150, fpn_dim=512, ppm_dim=512,
                                        scales=4) -> int:
    """Parameter count of the official UPerNet decoder (CSAILVision models.UPerNet), from its layout."""
    top = in_channels[-1]
    ppm = scales * conv_bn(top, ppm_dim, 1) + conv_bn(top + scales * ppm_dim, fpn_dim, 3)
    fpn = sum(conv_bn(c, fpn_dim, 1) for c in in_channels[:-1]) + 3 * conv_bn(fpn_dim, fpn_dim, 3)
    fusion = conv_bn(4 * fpn_dim, fpn_dim, 3) + fpn_dim * classes + classes
    return ppm + fpn + fusion


def carafe_pack_parameters(channels, scale, k_up=5, k_enc=3, compressed=64, groups=1) -> int:
    """Channel compressor (1x1, with bias) + content encoder (k_enc x k_enc, with bias)."""
    encoder_out = scale * scale * k_up * k_up * groups
    return channels * compressed + compressed + compressed * encoder_out * k_enc * k_enc + encoder_out


CSAIL_RESNET50_TRUNK = 23_631_808  # the official deep-stem resnet50 (25,680,808) without fc (2,049,000)
TORCHVISION_RESNET50_TRUNK = 23_508_032  # torchvision resnet50 (25,557,032) without fc (2,049,000)
CARAFE_PARAMETERS = {
    "PPM": 4 * carafe_pack_parameters(2048, 2),
    "FPN": 3 * carafe_pack_parameters(512, 2),
    "FUSION": sum(carafe_pack_parameters(512, s) for s in (2, 4, 8)),
}


@pytest.mark.parametrize("config", ["upernet_r50_ade20k.yaml", "upernet_r50_ade20k_carafe_ppm.yaml",
                                    "upernet_r50_ade20k_carafe_fpn.yaml", "upernet_r50_ade20k_carafe_fusion.yaml",
                                    "upernet_r50_ade20k_carafe.yaml"])
def test_parameter_counts_of_the_paper_models(config):
    cfg = load_seg_config(config)
    model = build_model(cfg)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    added = sum(CARAFE_PARAMETERS[p] for p in PLACES if cfg.MODEL.UPSAMPLER[p] == "carafe")
    assert count(model.backbone) == CSAIL_RESNET50_TRUNK == count(Resnet())
    assert count(model.decoder) == official_upernet_decoder_parameters() + added
    if config == "upernet_r50_ade20k.yaml":
        assert count(model) == 64_222_294
    if config == "upernet_r50_ade20k_carafe.yaml":
        assert added == 2_337_136 and count(model) == 66_559_430


def test_torchvision_resnet50_imagenet_weights_are_loaded(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(load_seg_config("upernet_r50_ade20k.yaml", ["MODEL.BACKBONE.NAME", "torchvision_resnet50",
                                                                    "MODEL.BACKBONE.WEIGHTS", str(path)]))
    assert sum(p.numel() for p in model.backbone.parameters()) == TORCHVISION_RESNET50_TRUNK
    assert torch.equal(model.backbone.stem[0].weight, reference.conv1.weight)
    assert torch.equal(model.backbone.layer4[2].bn3.running_var, reference.layer4[2].bn3.running_var)
    assert torch.equal(model.backbone.layer3[5].conv2.weight, reference.layer3[5].conv2.weight)


def test_bad_backbone_weights_name_the_file(tmp_path):
    def build(path):
        return build_model(load_seg_config("upernet_r50_ade20k.yaml", ["MODEL.BACKBONE.WEIGHTS", str(path)]))

    with pytest.raises(BackboneWeightsError, match="not found: .*missing.pth"):
        build(tmp_path / "missing.pth")
    partial = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), partial)
    with pytest.raises(BackboneWeightsError, match="resnet18.pth does not fit a DeepStemResNet: (lacks|has tensors of other shapes)"):
        build(partial)
    garbage = tmp_path / "notes.pth"
    garbage.write_text("not a checkpoint")
    with pytest.raises(BackboneWeightsError, match="notes.pth is not a readable state dict"):
        build(garbage)
