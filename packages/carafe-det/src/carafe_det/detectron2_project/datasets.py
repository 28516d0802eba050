"""COCO folders registered as detectron2 datasets: a name carafe_coco_<split> in DATASETS.TRAIN or DATASETS.TEST
reads DATASETS.ROOT/annotations/instances_<split>.json and the images in DATASETS.ROOT/<split>/."""

from __future__ import annotations

import json

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.coco import load_coco_json

from ..data.coco_folder import DatasetError, locate_split

PREFIX = "carafe_coco_"


def _load_checked(json_file: str, image_root: str, name: str):
    try:
        return load_coco_json(json_file, image_root, name)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{json_file}: not valid JSON ({error})") from None
    except (KeyError, TypeError, AssertionError) as error:
        raise DatasetError(f"{json_file}: not a COCO instances file ({type(error).__name__}: {error}); "
                           f"expected images, annotations and categories") from None


def register_coco_folder(name: str, root: str, split: str) -> None:
    """Registers `name` (replacing an earlier registration of it) for ROOT's split; DatasetError if the folder,
    annotation file or image folder is missing."""
    located = locate_split(root, split)
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    json_file, image_root = str(located.annotation_file), str(located.image_dir)
    DatasetCatalog.register(name, lambda: _load_checked(json_file, image_root, name))
    MetadataCatalog.get(name).set(json_file=json_file, image_root=image_root, evaluator_type="coco")


def register_config_datasets(cfg) -> list[str]:
    """Registers every carafe_coco_<split> name of DATASETS.TRAIN and DATASETS.TEST from DATASETS.ROOT."""
    names = [n for n in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST) if n.startswith(PREFIX)]
    if names and not cfg.DATASETS.ROOT:
        raise DatasetError(f"DATASETS.ROOT is empty, but {names} are read from it: give the COCO folder, "
                           f"e.g. DATASETS.ROOT /data/coco")
    for name in names:
        register_coco_folder(name, cfg.DATASETS.ROOT, name[len(PREFIX):])
    return names
