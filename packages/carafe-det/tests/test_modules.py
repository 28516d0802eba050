"""The framework-neutral modules: shapes, the baseline switch, parameter counts, and that each variant computes
what its reference computes (torchvision's FPN for the baseline, the authors' FPN_CARAFE layout for CARAFE)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from carafe_ops import CARAFEPack
from carafe_ops.nn import Interpolate
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from carafe_det.modeling import CARAFEFPN, CARAFESettings, DeconvUpsample, MaskUpsamplePredictor, build_mask_upsampler

RESNET50_WIDTHS = [256, 512, 1024, 2048]


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def backbone_features(widths, height, width, batch=1, seed=0):
    """C2..C5 as a ResNet makes them from a height x width image: strides 4..32, each level ceil(half) of the last."""
    gen = torch.Generator().manual_seed(seed)
    features, h, w = [], -(-height // 4), -(-width // 4)
    for channels in widths:
        features.append(torch.randn(batch, channels, h, w, generator=gen))
        h, w = -(-h // 2), -(-w // 2)
    return features


def test_paper_neck_has_four_carafe_packs_of_74148_parameters():
    fpn = CARAFEFPN(RESNET50_WIDTHS, 256, num_outs=5, upsample="carafe", top_level="conv",
                    carafe=CARAFESettings(up_kernel=5, up_group=1, encoder_kernel=3, compressed_channels=64))
    packs = [m for m in fpn.modules() if isinstance(m, CARAFEPack)]
    assert [count(p) for p in packs] == [74_148] * 4
    # 74,148 = compressor 256*64 + 64, encoder 64*(2*2*5*5)*3*3 + 100
    assert count(packs[0]) == 256 * 64 + 64 + 64 * 100 * 9 + 100


def test_baseline_neck_is_the_standard_fpn_parameter_for_parameter():
    baseline = CARAFEFPN(RESNET50_WIDTHS, 256, upsample="nearest", top_level="maxpool")
    reference = FeaturePyramidNetwork(RESNET50_WIDTHS, 256, extra_blocks=LastLevelMaxPool())
    assert count(baseline) == count(reference) == 3_344_384
    assert not any(isinstance(m, CARAFEPack) for m in baseline.modules())
    assert all(isinstance(m, Interpolate) and m.mode == "nearest" for m in baseline.upsample_modules)


def test_carafe_neck_adds_the_p6_conv_its_output_conv_and_four_packs():
    carafe = CARAFEFPN(RESNET50_WIDTHS, 256, upsample="carafe", top_level="conv")
    baseline = CARAFEFPN(RESNET50_WIDTHS, 256, upsample="nearest", top_level="maxpool")
    p6_lateral = 2048 * 256 * 9 + 256
    p6_output = 256 * 256 * 9 + 256
    assert count(carafe) - count(baseline) == p6_lateral + p6_output + 4 * 74_148


@torch.no_grad()
def test_nearest_maxpool_variant_equals_torchvision_fpn_with_the_same_weights():
    ours = CARAFEFPN([16, 24, 32, 40], 8, upsample="nearest", top_level="maxpool")
    reference = FeaturePyramidNetwork([16, 24, 32, 40], 8, extra_blocks=LastLevelMaxPool())
    for i in range(4):
        reference.inner_blocks[i][0].load_state_dict(ours.lateral_convs[i].state_dict())
        reference.layer_blocks[i][0].load_state_dict(ours.fpn_convs[i].state_dict())
    features = backbone_features([16, 24, 32, 40], 128, 192)
    expected = list(reference({str(i): f for i, f in enumerate(features)}).values())
    got = ours(features)
    assert len(got) == len(expected) == 5
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


@torch.no_grad()
def test_carafe_conv_variant_follows_fpn_carafe_step_by_step():
    """Recomputes FPN_CARAFE's forward by hand: laterals (a stride-2 conv on C5 for P6), the top-down sum with
    each CARAFE output cropped to the lateral, 3x3 output convs; odd sizes exercise the crop."""
    fpn = CARAFEFPN([8, 16, 24, 32], 16, upsample="carafe", top_level="conv",
                    carafe=CARAFESettings(compressed_channels=8))
    for pack in fpn.upsample_modules:  # random kernels, not the near-uniform ones of the init
        torch.nn.init.normal_(pack.content_encoder.weight, std=0.3)
    features = backbone_features([8, 16, 24, 32], 100, 150)  # C5 4x5 -> P6 2x3, which upsamples to 4x6
    laterals = [conv(x) for conv, x in zip(fpn.lateral_convs[:4], features)]
    laterals.append(F.conv2d(features[-1], fpn.lateral_convs[4].weight, fpn.lateral_convs[4].bias, stride=2,
                             padding=1))
    for i in range(4, 0, -1):
        up = fpn.upsample_modules[i - 1](laterals[i])
        h, w = laterals[i - 1].shape[-2:]
        assert up.shape[-2] >= h and up.shape[-1] >= w
        laterals[i - 1] = laterals[i - 1] + up[..., :h, :w]
    expected = [conv(x) for conv, x in zip(fpn.fpn_convs, laterals)]
    got = fpn(features)
    assert [tuple(t.shape[-2:]) for t in got] == [(25, 38), (13, 19), (7, 10), (4, 5), (2, 3)]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


def test_fpn_carafe_p6_feeds_the_top_down_pathway_and_maxpool_p6_does_not():
    """In FPN_CARAFE the P6 lateral is upsampled into P5 (so P2..P5 depend on it); in the standard FPN, P6 is a
    subsampling of P5 and the finer levels never see it."""
    features = backbone_features([8, 16, 24, 32], 128, 128)
    conv_fpn = CARAFEFPN([8, 16, 24, 32], 16, upsample="nearest", top_level="conv")
    outputs = conv_fpn(features)
    outputs[0].sum().backward()
    assert conv_fpn.lateral_convs[4].weight.grad.abs().sum() > 0

    pool_fpn = CARAFEFPN([8, 16, 24, 32], 16, upsample="carafe", top_level="maxpool")
    outputs = pool_fpn(features)
    torch.testing.assert_close(outputs[4], outputs[3][..., ::2, ::2])
    assert len(pool_fpn.upsample_modules) == 3 and len(pool_fpn.lateral_convs) == 4


@pytest.mark.parametrize("upsample,top_level", [("carafe", "conv"), ("nearest", "maxpool"), ("carafe", "maxpool"),
                                                ("nearest", "conv")])
@pytest.mark.parametrize("size", [(64, 64), (96, 160), (67, 101)])
def test_fpn_output_shapes_and_gradients(upsample, top_level, size):
    fpn = CARAFEFPN([8, 16, 24, 32], 16, upsample=upsample, top_level=top_level,
                    carafe=CARAFESettings(compressed_channels=8))
    features = backbone_features([8, 16, 24, 32], *size, batch=2)
    outputs = fpn(features)
    expected_sizes = [tuple(f.shape[-2:]) for f in features]
    expected_sizes.append((-(-expected_sizes[-1][0] // 2), -(-expected_sizes[-1][1] // 2)))
    assert [tuple(o.shape) for o in outputs] == [(2, 16, *s) for s in expected_sizes]
    sum(o.square().mean() for o in outputs).backward()
    for name, param in fpn.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_upsampler_kind_is_a_constructor_argument_sharing_one_module():
    carafe = CARAFEFPN([8, 16], 16, num_outs=2, upsample="carafe", carafe=CARAFESettings(up_kernel=3, up_group=2,
                                                                                         compressed_channels=4))
    nearest = CARAFEFPN([8, 16], 16, num_outs=2, upsample="nearest")
    assert type(carafe) is type(nearest)
    (pack,) = carafe.upsample_modules
    assert (pack.up_kernel, pack.up_group, pack.compressed_channels, pack.scale_factor) == (3, 2, 4, 2)
    assert isinstance(nearest.upsample_modules[0], Interpolate) and nearest.upsample_modules[0].mode == "nearest"


@pytest.mark.parametrize("bad,message", [
    (dict(upsample="bilinear"), "upsample must be one of 'nearest', 'carafe'; got 'bilinear'"),
    (dict(top_level="pool"), "top_level must be one of 'conv', 'maxpool'; got 'pool'"),
    (dict(num_outs=2), "num_outs (2) must be at least the number of backbone levels (4)"),
])
def test_bad_fpn_arguments_are_named(bad, message):
    with pytest.raises(ValueError) as error:
        CARAFEFPN([8, 16, 24, 32], 16, **bad)
    assert message in str(error.value)


def test_fpn_refuses_the_wrong_number_of_levels():
    fpn = CARAFEFPN([8, 16, 24, 32], 16)
    with pytest.raises(ValueError, match="expected 4 backbone levels, got 3"):
        fpn(backbone_features([8, 16, 24], 64, 64))


@pytest.mark.parametrize("kind,params,module", [("deconv", 256 * 256 * 4 + 256, DeconvUpsample),
                                                ("carafe", 74_148, CARAFEPack), ("nearest", 0, Interpolate)])
def test_mask_upsamplers_at_the_paper_width(kind, params, module):
    upsampler = build_mask_upsampler(kind, 256)
    assert isinstance(upsampler, module) and count(upsampler) == params
    predictor = MaskUpsamplePredictor(256, 81, upsample=kind)
    assert predictor(torch.randn(3, 256, 14, 14)).shape == (3, 81, 28, 28)


@torch.no_grad()
def test_mask_predictor_carafe_has_no_relu_and_deconv_has_one():
    """mmdetection's FCNMaskHead: ReLU after the deconvolution, none after CARAFE."""
    x = torch.randn(2, 16, 14, 14)
    carafe = MaskUpsamplePredictor(16, 3, upsample="carafe", carafe=CARAFESettings(compressed_channels=8))
    torch.nn.init.normal_(carafe.mask_fcn_logits.weight)
    torch.testing.assert_close(carafe(x), carafe.mask_fcn_logits(carafe.upsample(x)))
    assert (carafe.upsample(x) < 0).any()  # a weighted sum of signed features, not rectified
    deconv = MaskUpsamplePredictor(16, 3, upsample="deconv")
    upsampled = deconv.upsample(x)
    torch.testing.assert_close(upsampled, F.relu(F.conv_transpose2d(x, deconv.upsample.deconv.weight,
                                                                    deconv.upsample.deconv.bias, stride=2)))


def test_bad_mask_upsampler_is_named():
    with pytest.raises(ValueError, match="mask head upsample must be one of 'deconv', 'nearest', 'carafe'; got 'up'"):
        MaskUpsamplePredictor(16, 3, upsample="up")


def test_carafe_settings_from_a_config_section():
    section = {"UP_KERNEL": 3, "UP_GROUP": 2, "ENCODER_KERNEL": 1, "ENCODER_DILATION": 1, "COMPRESSED_CHANNELS": 32}
    assert CARAFESettings.from_config(section) == CARAFESettings(3, 2, 1, 1, 32)
