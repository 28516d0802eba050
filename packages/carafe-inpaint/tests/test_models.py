"""The generator variants (output shapes, the layers each one has, the hole kept out of the input) and the PatchGAN
discriminator."""

from __future__ import annotations

import pytest
import torch
from carafe_ops import CARAFEPack
from torch import nn

from carafe_inpaint import GLGenerator, PartialConv2d, PatchDiscriminator, complete, get_config
from carafe_inpaint.modeling import build_discriminator, build_generator, region_weights

VARIANTS = [("deconv", "standard"), ("carafe", "standard"), ("deconv", "partial"), ("carafe", "partial")]


def inputs(n, h, w, seed=0):
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(n, 3, h, w, generator=gen) * 2 - 1
    mask = (torch.rand(n, 1, h, w, generator=gen) > 0.7).float()
    return image, mask


@pytest.mark.parametrize("upsampler, conv", VARIANTS)
@pytest.mark.parametrize("size", [(32, 32), (24, 40)])
def test_output_shapes_and_range(upsampler, conv, size):
    torch.manual_seed(0)
    generator = GLGenerator(upsampler, conv, width=8, carafe={"COMPRESSED_CHANNELS": 8})
    image, mask = inputs(2, *size)
    prediction = generator(image, mask)
    assert prediction.shape == (2, 3, *size)
    assert prediction.abs().max() <= 1
    completed = complete(prediction, image, mask)
    assert torch.equal(completed[mask.expand_as(image) == 0], image[mask.expand_as(image) == 0])
    prediction.mean().backward()
    assert all(p.grad is not None for p in generator.parameters())


@pytest.mark.parametrize("upsampler, conv", VARIANTS)
def test_layers_of_each_variant(upsampler, conv):
    generator = GLGenerator(upsampler, conv, width=64)
    modules = list(generator.modules())
    count = lambda kind: sum(type(m) is kind for m in modules)  # noqa: E731
    assert count(nn.ConvTranspose2d) == (2 if upsampler == "deconv" else 0)
    assert count(CARAFEPack) == (2 if upsampler == "carafe" else 0)
    # 15 convolutions (14 conv-BN-ReLU + output), plus one 3x3 conv after each CARAFE
    convs = 15 + (2 if upsampler == "carafe" else 0)
    assert count(PartialConv2d) == (convs if conv == "partial" else 0)
    # CARAFEPack's own compressor and encoder are the only plain convs of a partial CARAFE model
    assert count(nn.Conv2d) == (0 if conv == "partial" else convs) + 2 * count(CARAFEPack)
    dilations = [m.dilation[0] for m in modules if isinstance(m, nn.Conv2d) and m.dilation[0] > 1]
    assert dilations == [2, 4, 8, 16]
    first = generator.blocks[0].conv
    assert first.in_channels == (3 if conv == "partial" else 4) and first.out_channels == 64
    assert first.kernel_size == (5, 5)
    if upsampler == "carafe":
        pack = generator.blocks[12].up
        assert (pack.channels, pack.scale_factor, pack.up_kernel, pack.encoder_kernel, pack.compressed_channels) == \
            (256, 2, 5, 3, 64)
        assert (generator.blocks[12].conv.in_channels, generator.blocks[12].conv.out_channels) == (256, 128)


def test_full_size_generator_at_256():
    torch.manual_seed(0)
    cfg = get_config("places_carafe")
    generator = build_generator(cfg).eval()
    image, mask = inputs(1, 256, 256)
    with torch.no_grad():
        assert generator(image, mask).shape == (1, 3, 256, 256)
    assert build_discriminator(cfg)(image).shape == (1, 1, 30, 30)  # the 70x70 PatchGAN on 256x256


@pytest.mark.parametrize("upsampler, conv", VARIANTS)
def test_hole_content_does_not_reach_the_output(upsampler, conv):
    torch.manual_seed(0)
    generator = GLGenerator(upsampler, conv, width=8, carafe={"COMPRESSED_CHANNELS": 8}).eval()
    image, mask = inputs(2, 32, 32)
    altered = torch.where(mask.bool(), torch.rand_like(image), image)
    with torch.no_grad():
        assert torch.equal(generator(image, mask), generator(altered, mask))


def test_bad_inputs_are_refused():
    generator = GLGenerator("deconv", width=8)
    with pytest.raises(ValueError, match="multiples of 4"):
        generator(*inputs(1, 30, 32))
    with pytest.raises(ValueError, match=r"expected image \(N, 3, H, W\) and mask \(N, 1, H, W\)"):
        generator(torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="MODEL.UPSAMPLER must be one of"):
        GLGenerator("bilinear")
    with pytest.raises(ValueError, match="MODEL.CONV must be one of"):
        GLGenerator("deconv", "gated")


def test_discriminator_and_its_region():
    disc = PatchDiscriminator(width=8, num_layers=2)
    assert disc(torch.zeros(3, 3, 64, 64)).shape == (3, 1, 14, 14)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 40:48, 8:16] = 1
    weights = region_weights(mask, torch.zeros(1, 1, 8, 8))
    # the hole covers cells 5 (rows 40..47) and 1 (cols 8..15) of an 8x8 grid of 8-pixel cells
    expected = torch.zeros(1, 1, 8, 8)
    expected[..., 5, 1] = 1
    assert torch.equal(weights, expected)
