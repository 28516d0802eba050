"""carafe-inpaint: the inpainting experiment of the CARAFE paper (Wang et al., ICCV 2019).

A Global&Local generator (Iizuka et al. 2017) whose two x2 upsamplers are deconvolutions (the baseline) or CARAFE,
optionally with the official Partial Conv in place of its convolutions; one PatchGAN discriminator on the
inpainted region; DeepFill v2's training masks (Yu et al.: a box united with brush strokes) and an evaluation mask
set binned by hole coverage; Places-style data and embedded photographs; the commands
carafe-inpaint-train, carafe-inpaint-predict, carafe-inpaint-make-data and carafe-inpaint-step-benchmark.

>>> import torch
>>> from carafe_inpaint import GLGenerator, complete
>>> g = GLGenerator(upsampler="carafe", width=16)
>>> image, mask = torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
>>> complete(g(image, mask), image, mask).shape
torch.Size([1, 3, 64, 64])
"""

from .config import DEFAULTS, add_inpaint_config, get_config
from .data import DataError, TrainingViews, ValidationPairs, open_source
from .data.images import ImageReadError, read_image, read_mask
from .data.masks import box_mask, brush_stroke_mask, free_form_mask, seeded_mask
from .evaluation import evaluate, image_metrics
from .modeling import GLGenerator, PatchDiscriminator, PartialConv2d, build_discriminator, build_generator, complete

__version__ = "0.1.0"

__all__ = ["DEFAULTS", "DataError", "GLGenerator", "ImageReadError", "PartialConv2d", "PatchDiscriminator",
           "TrainingViews", "ValidationPairs", "add_inpaint_config", "box_mask", "brush_stroke_mask",
           "build_discriminator", "build_generator", "complete", "evaluate", "free_form_mask", "get_config",
           "image_metrics", "open_source", "read_image", "read_mask", "seeded_mask"]
