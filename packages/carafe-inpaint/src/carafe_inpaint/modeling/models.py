"""The Global&Local completion network (Iizuka et al., SIGGRAPH 2017) with a choice of upsampler and convolution,
and the PatchGAN discriminator that judges the inpainted region.

Generator, at width 64 (the paper's; other widths scale every channel count by width / 64). Each row is
conv -> BatchNorm -> ReLU, except the last (conv -> tanh, the [-1, 1] output):

    conv 5x5 64 | conv 3x3 /2 128 | conv 3x3 128 | conv 3x3 /2 256 | conv 3x3 256 | conv 3x3 256     encoder
    conv 3x3 256, dilation 2, 4, 8, 16                                                                 dilated
    conv 3x3 256 | conv 3x3 256 | UP 256 -> 128 | conv 3x3 128 | UP 128 -> 64 | conv 3x3 32 | conv 3x3 3  decoder

UP, the x2 upsampler (MODEL.UPSAMPLER):
    'deconv'  ConvTranspose2d(C_in, C_out, 4, stride 2, padding 1) -> BN -> ReLU       (the original network)
    'carafe'  CARAFEPack(C_in, scale_factor=2, k_up, k_enc, C_m, G) -> Conv2d(C_in, C_out, 3, padding 1) -> BN
              -> ReLU: CARAFE upsamples the C_in channels content-aware, and the 3x3 convolution that follows does
              the deconvolution's other job, the change of channels

MODEL.CONV 'partial' replaces every Conv2d of the generator (its 15 convolutions and, with CARAFE, the 3x3
convolution after each CARAFE; not the deconvolutions or CARAFE's own kernel-prediction layers) with the official
Partial Conv: the input is the masked image (hole pixels zeroed) and its valid-pixel mask 1 - M, which
each partial convolution updates and passes on; after an upsampler the mask is upsampled by nearest neighbour.
The mask is one channel shared by all feature channels: since every channel of a layer has the same mask, this
gives the same result as the official module's multi_channel=True, at a fraction of the cost.
MODEL.CONV 'standard' feeds the network the masked image and the mask as a fourth channel, as in Global&Local.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from carafe_ops.nn import build_upsampler, upsampler_options
from torch import Tensor, nn

from .partial_conv import PartialConv2d

UPSAMPLERS = ("deconv", "carafe")
CONVS = ("standard", "partial")

# (output channels at width 64, kernel, stride, dilation); "up" marks an x2 upsampler
GENERATOR_LAYERS = (
    (64, 5, 1, 1), (128, 3, 2, 1), (128, 3, 1, 1), (256, 3, 2, 1), (256, 3, 1, 1), (256, 3, 1, 1),
    (256, 3, 1, 2), (256, 3, 1, 4), (256, 3, 1, 8), (256, 3, 1, 16),
    (256, 3, 1, 1), (256, 3, 1, 1), (128, "up"), (128, 3, 1, 1), (64, "up"), (32, 3, 1, 1),
)


def apply_conv(conv: nn.Module | None, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """A PartialConv2d takes and updates the mask; a plain conv leaves it as it is; None is the identity."""
    if isinstance(conv, PartialConv2d):
        return conv(x, mask)
    return (x if conv is None else conv(x)), mask


class Block(nn.Module):
    """[x2 upsampler ->] conv -> BN -> ReLU; after the upsampler the mask (if any) is upsampled by nearest
    neighbour. conv None: the upsampler (a deconvolution) changes the channels itself."""

    def __init__(self, out_channels: int, conv: nn.Module | None, up: nn.Module | None = None):
        super().__init__()
        self.up, self.conv, self.norm = up, conv, nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if self.up is not None:
            x = self.up(x)
            if mask is not None:
                mask = F.interpolate(mask, size=x.shape[-2:], mode="nearest")
        x, mask = apply_conv(self.conv, x, mask)
        return F.relu(self.norm(x)), mask


class GLGenerator(nn.Module):
    """forward(image, mask) -> ŷ, the prediction for every pixel, in [-1, 1].

    image: (N, 3, H, W) in [-1, 1], mask: (N, 1, H, W), 1 = hole; H and W multiples of 4. The hole pixels of
    image are zeroed here, so the network never sees them. Use :func:`complete` for y = (1 - M) x + M ŷ.
    """

    def __init__(self, upsampler: str = "deconv", conv: str = "standard", width: int = 64,
                 carafe: dict | None = None):
        super().__init__()
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"MODEL.UPSAMPLER must be one of {UPSAMPLERS}, got {upsampler!r}")
        if conv not in CONVS:
            raise ValueError(f"MODEL.CONV must be one of {CONVS}, got {conv!r}")
        if width < 2 or width % 2:
            raise ValueError(f"MODEL.WIDTH must be an even number >= 2, got {width}")
        carafe = {"UP_KERNEL": 5, "UP_GROUP": 1, "ENCODER_KERNEL": 3, "COMPRESSED_CHANNELS": 64, **(carafe or {})}
        self.partial = conv == "partial"
        channels = 3 if self.partial else 4
        make_conv = PartialConv2d if self.partial else nn.Conv2d
        options = upsampler_options(carafe)
        blocks = []
        for spec in GENERATOR_LAYERS:
            out = spec[0] * width // 64
            if spec[1] != "up":
                kernel, stride, dilation = spec[1:]
                blocks.append(Block(out, make_conv(channels, out, kernel, stride=stride, dilation=dilation,
                                                   padding=dilation * (kernel - 1) // 2)))
            elif upsampler == "deconv":  # the deconvolution changes the channels itself
                blocks.append(Block(out, None, build_upsampler(upsampler, channels, 2, out_channels=out, **options)))
            else:  # CARAFE keeps them, and the 3x3 convolution after it changes them
                up = build_upsampler(upsampler, channels, 2, **options)
                blocks.append(Block(out, make_conv(channels, out, 3, padding=1), up))
            channels = out
        self.blocks = nn.ModuleList(blocks)
        self.output = make_conv(channels, 3, 3, padding=1)

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        if image.dim() != 4 or image.shape[1] != 3 or mask.dim() != 4 or mask.shape[1] != 1 \
                or mask.shape[0] != image.shape[0] or mask.shape[2:] != image.shape[2:]:
            raise ValueError(f"GLGenerator: expected image (N, 3, H, W) and mask (N, 1, H, W), got "
                             f"{tuple(image.shape)} and {tuple(mask.shape)}")
        if image.shape[2] % 4 or image.shape[3] % 4:
            raise ValueError(f"GLGenerator: height and width must be multiples of 4 (two stride-2 stages), got "
                             f"{image.shape[2]}x{image.shape[3]}")
        valid = 1.0 - mask
        x, state = (image * valid, valid) if self.partial else (torch.cat([image * valid, mask], dim=1), None)
        for block in self.blocks:
            x, state = block(x, state)
        return torch.tanh(apply_conv(self.output, x, state)[0])


def complete(prediction: Tensor, image: Tensor, mask: Tensor) -> Tensor:
    """y = (1 - M) ⊙ x + M ⊙ ŷ: the known pixels of the image, the prediction in the hole."""
    return image * (1.0 - mask) + prediction * mask


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al.'s 70x70 discriminator, as in pix2pix): conv 4x4 /2 width, then num_layers - 1 more
    stride-2 and one stride-1 conv with BN and LeakyReLU(0.2), each doubling the channels up to 8 x width, then a
    4x4 conv to one logit per patch. forward(image) -> (N, 1, h, w) logits."""

    def __init__(self, width: int = 64, num_layers: int = 3):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"DISCRIMINATOR.NUM_LAYERS must be >= 1, got {num_layers}")
        layers = [nn.Conv2d(3, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        channels = width
        for i in range(1, num_layers + 1):
            out = width * min(2**i, 8)
            stride = 2 if i < num_layers else 1
            layers += [nn.Conv2d(channels, out, 4, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.LeakyReLU(0.2)]
            channels = out
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, image: Tensor) -> Tensor:
        return self.net(image)


def region_weights(mask: Tensor, logits: Tensor) -> Tensor:
    """Which patches judge the inpainted region: a patch logit counts where its cell of the mask, resized to the
    logit grid by max pooling, holds any hole pixel."""
    return F.adaptive_max_pool2d(mask, logits.shape[-2:])


def build_generator(cfg) -> GLGenerator:
    return GLGenerator(cfg.MODEL.UPSAMPLER, cfg.MODEL.CONV, cfg.MODEL.WIDTH, dict(cfg.MODEL.CARAFE))


def build_discriminator(cfg) -> PatchDiscriminator:
    return PatchDiscriminator(cfg.DISCRIMINATOR.WIDTH, cfg.DISCRIMINATOR.NUM_LAYERS)
