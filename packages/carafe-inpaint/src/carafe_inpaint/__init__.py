"""carafe-inpaint: the inpainting experiment of the CARAFE paper (Wang et al., ICCV 2019).

A Global&Local generator (Iizuka et al. 2017) whose two x2 upsamplers are deconvolutions (the baseline) or CARAFE,
optionally with the official Partial Conv in place of its convolutions; one PatchGAN discriminator on the
inpainted region; free-form masks (Yu et al.); Places-style data and embedded photographs; the commands
carafe-inpaint-train, carafe-inpaint-predict and carafe-inpaint-masks.

>>> import torch
>>> from carafe_inpaint import GLGenerator, complete
>>> g = GLGenerator(upsampler="carafe", width=16)
>>> image, mask = torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
>>> complete(g(image, mask), image, mask).shape
torch.Size([1, 3, 64, 64])
"""

from .config import DEFAULTS, get_config, shipped_configs
from .data import DataError, TrainingViews, ValidationPairs, open_source
from .images import ImageReadError, read_image, read_mask
from .masks import free_form_mask, seeded_mask
from .metrics import evaluate, image_metrics
from .models import GLGenerator, PatchDiscriminator, build_discriminator, build_generator, complete
from .partial_conv import PartialConv2d

__version__ = "0.1.0"

__all__ = [
    "DEFAULTS",
    "DataError",
    "GLGenerator",
    "ImageReadError",
    "PartialConv2d",
    "PatchDiscriminator",
    "TrainingViews",
    "ValidationPairs",
    "build_discriminator",
    "build_generator",
    "complete",
    "evaluate",
    "free_form_mask",
    "get_config",
    "image_metrics",
    "open_source",
    "read_image",
    "read_mask",
    "seeded_mask",
    "shipped_configs",
]
