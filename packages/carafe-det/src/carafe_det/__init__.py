"""carafe-det: Faster R-CNN and Mask R-CNN with CARAFE in the FPN top-down pathway and the mask head.

- `carafe_det.modeling`: the framework-neutral modules (CARAFEFPN, MaskUpsamplePredictor), nearest/deconv
  baselines and CARAFE on one code path.
- `carafe_det.torchvision_engine`: the four models on torchvision's Faster/Mask R-CNN, trained by carafe-det-train.
- `carafe_det.detectron2_project`: the detectron2 project (registries, add_carafe_config); needs detectron2,
  which this package does not import unless asked to.
"""

from .modeling import CARAFEFPN, CARAFESettings, MaskUpsamplePredictor, build_mask_upsampler, build_upsampler

__version__ = "0.1.0"

__all__ = ["CARAFEFPN", "CARAFESettings", "MaskUpsamplePredictor", "build_mask_upsampler", "build_upsampler"]
