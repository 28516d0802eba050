"""A COCO-format dataset folder, checked before anything trains on it.

Layout (COCO's own, and what carafe-det-make-data writes):

    ROOT/annotations/instances_<split>.json     e.g. instances_train2017.json, instances_val2017.json
    ROOT/<split>/<file_name>                    the images the json's "images" list names

Every problem is a DatasetError that names the file (and the entry or key) and what was expected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from carafe_engine import DatasetError  # a user error: one line and exit status 2 in every command

LAYOUT = "ROOT/annotations/instances_<split>.json and ROOT/<split>/ (the images)"


@dataclass(frozen=True)
class CocoSplit:
    """Where one split of a COCO folder lives."""

    root: Path
    split: str
    annotation_file: Path
    image_dir: Path


def locate_split(root: str | Path, split: str) -> CocoSplit:
    """The annotation file and image folder of `split` under `root`; DatasetError if either is missing."""
    root = Path(root).expanduser()
    if not str(root) or str(root) == ".":
        raise DatasetError(f"no dataset folder given (DATASETS root is empty); expected a COCO folder: {LAYOUT}")
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root} (expected a COCO folder: {LAYOUT})")
    annotation_file = root / "annotations" / f"instances_{split}.json"
    if not annotation_file.is_file():
        found = sorted(p.name for p in (root / "annotations").glob("instances_*.json")) if (root / "annotations").is_dir() else []
        raise DatasetError(f"annotation file not found: {annotation_file} (split {split!r}; annotation files in "
                           f"{root / 'annotations'}: {found or 'none'}; expected {LAYOUT})")
    image_dir = root / split
    if not image_dir.is_dir():
        raise DatasetError(f"image folder not found: {image_dir} (split {split!r}; expected {LAYOUT})")
    return CocoSplit(root, split, annotation_file, image_dir)


def _require(entry: dict, keys: tuple[str, ...], where: str, path: Path) -> None:
    if not isinstance(entry, dict):
        raise DatasetError(f"{path}: {where} must be an object, got {type(entry).__name__}")
    for key in keys:
        if key not in entry:
            raise DatasetError(f"{path}: {where} has no {key!r} (COCO format needs {', '.join(keys)})")


def load_annotations(path: str | Path) -> dict:
    """Reads a COCO instances json and checks the fields the detectors use; DatasetError names the file and the
    first bad entry."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"annotation file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: a COCO annotation file holds an object with images, annotations and "
                           f"categories; got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: {key!r} must be a list (COCO instances format), got "
                               f"{type(data.get(key)).__name__ if key in data else 'nothing'}")
    if not data["categories"]:
        raise DatasetError(f"{path}: 'categories' is empty")
    for i, category in enumerate(data["categories"]):
        _require(category, ("id", "name"), f"categories[{i}]", path)
    image_ids = set()
    for i, image in enumerate(data["images"]):
        _require(image, ("id", "file_name", "height", "width"), f"images[{i}]", path)
        image_ids.add(image["id"])
    category_ids = {c["id"] for c in data["categories"]}
    for i, annotation in enumerate(data["annotations"]):
        _require(annotation, ("id", "image_id", "category_id", "bbox"), f"annotations[{i}]", path)
        bbox = annotation["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            raise DatasetError(f"{path}: annotations[{i}].bbox must be [x, y, width, height], got {bbox!r}")
        if annotation["image_id"] not in image_ids:
            raise DatasetError(f"{path}: annotations[{i}].image_id {annotation['image_id']!r} is not in 'images'")
        if annotation["category_id"] not in category_ids:
            raise DatasetError(f"{path}: annotations[{i}].category_id {annotation['category_id']!r} is not in "
                               f"'categories'")
    return data
