"""The networks: the Global&Local generator (deconvolution or CARAFE upsamplers, standard or Partial Conv) and the
PatchGAN discriminator on the inpainted region."""

from .models import GLGenerator, PatchDiscriminator, build_discriminator, build_generator, complete, region_weights
from .partial_conv import PartialConv2d
