"""COCO folders for the torchvision engine: images and targets as torchvision's detectors take them, horizontal
flips drawn per sample of the engine's stream (carafe_engine.Sample), and the class list."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
import numpy as np
import torch
from carafe_engine import Sample, read_image, sample_rng
from pycocotools.coco import COCO
from torch.utils.data import Dataset

from ..data.coco_folder import DatasetError, load_annotations, locate_split


def coco_api(annotations: dict) -> COCO:
    """A pycocotools COCO index over already-loaded (and checked) annotations, without its prints."""
    api = COCO()
    api.dataset = annotations
    with contextlib.redirect_stdout(io.StringIO()):
        api.createIndex()
    return api


class CocoDetectionDataset(Dataset):
    """One split of a COCO folder: dataset[index] (or load(index, flip)) -> (image float CHW in [0, 1], target dict
    with boxes (x0, y0, x1, y1), labels (1..K, 0 is background), masks (if with_masks) and image_id). Indexed by a
    carafe_engine.Sample (training), the image is flipped with probability hflip_prob, drawn from (seed, the
    sample's position): the same in every process count and resumed run."""

    def __init__(self, root: str | Path, split: str, with_masks: bool, filter_empty: bool = False,
                 hflip_prob: float = 0.0, seed: int = 0):
        located = locate_split(root, split)
        self.annotation_file = located.annotation_file
        self.image_dir = located.image_dir
        self.coco = coco_api(load_annotations(located.annotation_file))
        self.with_masks = with_masks
        categories = sorted(self.coco.dataset["categories"], key=lambda c: c["id"])
        self.category_ids = [c["id"] for c in categories]
        self.class_names = [c["name"] for c in categories]
        self.label_of_category = {cid: label for label, cid in enumerate(self.category_ids, start=1)}
        image_ids = sorted(self.coco.getImgIds())
        if filter_empty:  # as detectron2 and torchvision's references: images without objects do not train
            image_ids = [i for i in image_ids if self._usable_annotations(i)]
        if not image_ids:
            raise DatasetError(f"{self.annotation_file}: no images{' with annotations' if filter_empty else ''}")
        self.image_ids = image_ids
        self.hflip_prob, self.seed = hflip_prob, seed

    def __len__(self) -> int:
        return len(self.image_ids)

    def _usable_annotations(self, image_id: int) -> list[dict]:
        annotations = self.coco.imgToAnns.get(image_id, [])
        return [a for a in annotations if not a.get("iscrowd", 0) and a["bbox"][2] > 1 and a["bbox"][3] > 1]

    def image_path(self, index: int) -> Path:
        return self.image_dir / self.coco.imgs[self.image_ids[index]]["file_name"]

    def aspect_ratio_groups(self) -> list[int]:
        """0 for each landscape (or square) image, 1 for each portrait one (DATALOADER.ASPECT_RATIO_GROUPING)."""
        return [int(self.coco.imgs[i]["height"] > self.coco.imgs[i]["width"]) for i in self.image_ids]

    def __getitem__(self, item: int | Sample) -> tuple[torch.Tensor, dict]:
        if isinstance(item, Sample):
            return self.load(item.index, bool(sample_rng(self.seed, item.position).random() < self.hflip_prob))
        return self.load(item)

    def load(self, index: int, flip: bool = False) -> tuple[torch.Tensor, dict]:
        image_id = self.image_ids[index]
        info = self.coco.imgs[image_id]
        pixels = read_image(self.image_path(index))
        if pixels.shape[:2] != (info["height"], info["width"]):
            raise DatasetError(f"{self.image_path(index)} is {pixels.shape[1]}x{pixels.shape[0]} but "
                               f"{self.annotation_file} says {info['width']}x{info['height']}")
        annotations = self._usable_annotations(image_id)
        boxes = torch.tensor([a["bbox"] for a in annotations], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        target = {
            "boxes": boxes,
            "labels": torch.tensor([self.label_of_category[a["category_id"]] for a in annotations], dtype=torch.int64),
            "image_id": image_id,
        }
        if self.with_masks:
            masks = [self._mask(a, index) for a in annotations]
            target["masks"] = torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, *pixels.shape[:2],
                                                                                           dtype=torch.uint8)
        image = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255)
        if flip:
            image = image.flip(-1)
            width = image.shape[-1]
            target["boxes"] = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
            if self.with_masks:
                target["masks"] = target["masks"].flip(-1)
        return image, target

    def _mask(self, annotation: dict, index: int) -> np.ndarray:
        if "segmentation" not in annotation:
            raise DatasetError(f"{self.annotation_file}: annotation {annotation['id']} (image "
                               f"{self.image_path(index).name}) has no 'segmentation', which Mask R-CNN needs")
        try:
            return self.coco.annToMask(annotation).astype(np.uint8)
        except Exception as error:  # noqa: BLE001 - pycocotools raises bare errors on bad polygons or RLE
            raise DatasetError(f"{self.annotation_file}: annotation {annotation['id']} has an unreadable "
                               f"'segmentation': {error}") from None


def collate(batch):
    return tuple(zip(*batch))
