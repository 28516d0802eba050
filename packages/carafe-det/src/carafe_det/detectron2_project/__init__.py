"""The detectron2 project of carafe-det (needs detectron2). Importing it registers:

- BACKBONE_REGISTRY: build_carafe_resnet_fpn_backbone (ResNet + CARAFEFPN)
- ROI_MASK_HEAD_REGISTRY: CARAFEMaskHead

and exports add_carafe_config. Configs: carafe_det/configs/detectron2/*.yaml; training: carafe-det-train
--engine detectron2 (or train_net.main)."""

from .config import add_carafe_config, load_detectron2_config
from .backbone import CARAFEFPNBackbone, build_carafe_resnet_fpn_backbone
from .mask_head import CARAFEMaskHead
from .datasets import register_coco_folder, register_config_datasets

__all__ = ["CARAFEFPNBackbone", "CARAFEMaskHead", "add_carafe_config", "load_detectron2_config", "build_carafe_resnet_fpn_backbone",
           "register_coco_folder", "register_config_datasets"]
