"""Datasets: COCO-format folders (checked, with clear errors) and the generated shapes dataset."""

from .coco_folder import CocoSplit, DatasetError, load_annotations, locate_split
from .shapes import CLASSES as SHAPE_CLASSES
from .shapes import make_shapes_dataset

__all__ = ["CocoSplit", "DatasetError", "SHAPE_CLASSES", "load_annotations", "locate_split", "make_shapes_dataset"]
