"""carafe_ops.nn.build_upsampler, the one factory from an upsampler's name: every kind's output, CARAFE equal to
a CARAFEPack built directly, and the errors."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from carafe_ops import CARAFEPack
from carafe_ops.nn import UPSAMPLERS, BilinearThenCARAFE, Interpolate, build_upsampler, upsampler_options

CARAFE_OPTIONS = dict(up_kernel=3, up_group=2, encoder_kernel=5, encoder_dilation=2, compressed_channels=8)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("scale_factor", [2, 3])
def test_interpolations_are_f_interpolate(mode, scale_factor):
    x = torch.randn(2, 6, 5, 7)
    up = build_upsampler(mode, 6, scale_factor)
    assert isinstance(up, Interpolate) and not list(up.parameters())
    align = False if mode == "bilinear" else None
    expected = F.interpolate(x, scale_factor=scale_factor, mode=mode, align_corners=align)
    assert up(x).shape == (2, 6, 5 * scale_factor, 7 * scale_factor)
    torch.testing.assert_close(up(x), expected, rtol=0, atol=0)
    # an explicit size wins, as in CARAFEPack.forward
    torch.testing.assert_close(up(x, [9, 11]), F.interpolate(x, size=(9, 11), mode=mode, align_corners=align))


@pytest.mark.parametrize("scale_factor,kernel,padding", [(1, 1, 0), (2, 4, 1), (3, 5, 1), (4, 8, 2)])
def test_deconv_is_exactly_scale_factor_times_larger(scale_factor, kernel, padding):
    up = build_upsampler("deconv", 6, scale_factor, out_channels=4)
    assert isinstance(up, nn.ConvTranspose2d)
    assert (up.in_channels, up.out_channels, up.kernel_size, up.stride, up.padding) == (
        6, 4, (kernel, kernel), (scale_factor, scale_factor), (padding, padding))
    assert up(torch.randn(2, 6, 5, 7)).shape == (2, 4, 5 * scale_factor, 7 * scale_factor)
    # kernel = stride: the Mask R-CNN head's deconvolution
    assert build_upsampler("deconv", 6, 2, deconv_kernel=2)(torch.randn(1, 6, 5, 7)).shape == (1, 6, 10, 14)


@pytest.mark.parametrize("scale_factor", [2, 4])
def test_carafe_equals_a_carafepack_built_directly(scale_factor):
    x = torch.randn(2, 16, 6, 5)
    torch.manual_seed(3)
    built = build_upsampler("carafe", 16, scale_factor, **CARAFE_OPTIONS, out_channels=16, deconv_kernel=3)
    torch.manual_seed(3)
    direct = CARAFEPack(16, scale_factor, **CARAFE_OPTIONS)
    assert type(built) is CARAFEPack
    assert built.state_dict().keys() == direct.state_dict().keys()
    assert all(torch.equal(built.state_dict()[k], v) for k, v in direct.state_dict().items())
    torch.nn.init.normal_(built.content_encoder.weight)  # kernels far from uniform
    direct.load_state_dict(built.state_dict())
    out = built(x)
    assert out.shape == (2, 16, 6 * scale_factor, 5 * scale_factor)
    torch.testing.assert_close(out, direct(x), rtol=0, atol=0)


def test_default_carafe_is_the_papers():
    up = build_upsampler("carafe", 8)
    assert (up.scale_factor, up.up_kernel, up.up_group, up.encoder_kernel, up.encoder_dilation,
            up.compressed_channels) == (2, 5, 1, 3, 1, 64)


def test_options_from_a_config_section():
    # MODEL.CARAFE as the configs write it; SCALE_FACTOR is each place's own, not an option
    section = {"SCALE_FACTOR": 4, "UP_KERNEL": 3, "UP_GROUP": 2, "ENCODER_KERNEL": 5, "ENCODER_DILATION": 2,
               "COMPRESSED_CHANNELS": 8}
    assert upsampler_options(section) == CARAFE_OPTIONS
    assert build_upsampler("carafe", 16, 2, **upsampler_options(section)).scale_factor == 2


def test_no_integer_ratio_takes_the_size_per_call():
    x = torch.randn(1, 8, 3, 3)
    torch.manual_seed(0)
    up = build_upsampler("carafe", 8, None, compressed_channels=4)
    assert isinstance(up, BilinearThenCARAFE) and up.carafe.scale_factor == 2
    torch.nn.init.normal_(up.carafe.content_encoder.weight)
    # bilinear to half the size (rounded up), then CARAFE x2 to the exact size
    half = F.interpolate(x, size=(6, 9), mode="bilinear", align_corners=False)
    torch.testing.assert_close(up(x, [11, 17]), up.carafe(half, [11, 17]), rtol=0, atol=0)
    assert up(x, [11, 17]).shape == (1, 8, 11, 17)
    bilinear = build_upsampler("bilinear", 8, None)
    torch.testing.assert_close(bilinear(x, [11, 17]), F.interpolate(x, size=(11, 17), mode="bilinear"))
    with pytest.raises(ValueError, match="forward needs the output size"):
        bilinear(x)


def test_interpolate_scripts():
    x = torch.randn(1, 4, 5, 6)
    for mode in ("nearest", "bilinear"):
        up = build_upsampler(mode, 4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.script is deprecated in recent PyTorch releases
            scripted = torch.jit.script(up)
        torch.testing.assert_close(scripted(x), up(x), rtol=0, atol=0)
        torch.testing.assert_close(scripted(x, [7, 9]), up(x, [7, 9]), rtol=0, atol=0)


def test_errors_name_the_argument():
    choices = ", ".join(repr(kind) for kind in UPSAMPLERS)
    with pytest.raises(ValueError, match=f"kind must be one of {choices}; got 'pixelshuffle'"):
        build_upsampler("pixelshuffle", 8)
    with pytest.raises(ValueError, match="kind must be one of"):
        build_upsampler(None, 8)
    with pytest.raises(TypeError, match="unknown option.s. up_kernal; the options are up_kernel, "):
        build_upsampler("carafe", 8, up_kernal=3)
    with pytest.raises(ValueError, match="channels must be an integer >= 1, got 0"):
        build_upsampler("nearest", 0)
    with pytest.raises(ValueError, match="scale_factor must be an integer >= 1, got 1.5"):
        build_upsampler("bilinear", 8, 1.5)
    with pytest.raises(ValueError, match=r"out_channels \(4\) differs from channels \(8\), but a 'carafe' upsampler"):
        build_upsampler("carafe", 8, out_channels=4)
    with pytest.raises(ValueError, match="'deconv' needs an integer scale_factor, got None"):
        build_upsampler("deconv", 8, None)
    with pytest.raises(ValueError, match=r"deconv_kernel must be scale_factor \(2\) plus an even number"):
        build_upsampler("deconv", 8, 2, deconv_kernel=3)
    with pytest.raises(ValueError, match="deconv_kernel must be an integer >= 2, got 1"):
        build_upsampler("deconv", 8, 2, deconv_kernel=1)
    with pytest.raises(ValueError, match="up_kernel|kernel_size"):  # CARAFEPack's own checks still apply
        build_upsampler("carafe", 8, up_kernel=4)
