"""The torchvision engine: the four models on torchvision's Faster/Mask R-CNN, trained by carafe-det-train on
carafe_engine's Trainer (DetectionTrainer), evaluated with pycocotools."""

from .config import DEFAULTS, checkpoint_kind, load_torchvision_config
from .data import CocoDetectionDataset
from .evaluate import evaluate
from .model import build_model, load_model_weights
from .trainer import DetectionTrainer

__all__ = ["CocoDetectionDataset", "DEFAULTS", "DetectionTrainer", "build_model", "checkpoint_kind", "evaluate",
           "load_model_weights", "load_torchvision_config"]
