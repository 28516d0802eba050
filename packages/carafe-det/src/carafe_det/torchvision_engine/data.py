"""COCO folders for the torchvision engine: images and targets as torchvision's detectors take them, a
deterministic batch order (so a resumed run sees the batches the killed one would have), and the class list."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from pycocotools.coco import COCO
from torch.utils.data import Dataset

from ..data.coco_folder import DatasetError, load_annotations, locate_split, read_image


def coco_api(annotations: dict) -> COCO:
    """A pycocotools COCO index over already-loaded (and checked) annotations, without its prints."""
    api = COCO()
    api.dataset = annotations
    with contextlib.redirect_stdout(io.StringIO()):
        api.createIndex()
    return api


class CocoDetectionDataset(Dataset):
    """One split of a COCO folder. item (index, flip) -> (image float CHW in [0, 1], target dict with boxes
    (x0, y0, x1, y1), labels (1..K, 0 is background), masks (if with_masks) and image_id)."""

    def __init__(self, root: str | Path, split: str, with_masks: bool, filter_empty: bool = False):
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

    def __len__(self) -> int:
        return len(self.image_ids)

    def _usable_annotations(self, image_id: int) -> list[dict]:
        annotations = self.coco.imgToAnns.get(image_id, [])
        return [a for a in annotations if not a.get("iscrowd", 0) and a["bbox"][2] > 1 and a["bbox"][3] > 1]

    def image_path(self, index: int) -> Path:
        return self.image_dir / self.coco.imgs[self.image_ids[index]]["file_name"]

    def __getitem__(self, item) -> tuple[torch.Tensor, dict]:
        index, flip = item if isinstance(item, tuple) else (item, False)
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


def iterations_per_epoch(dataset_size: int, ims_per_batch: int) -> int:
    """Full batches per epoch (an epoch's incomplete last batch is dropped)."""
    if dataset_size < ims_per_batch:
        raise ValueError(f"the training set has {dataset_size} images, fewer than SOLVER.IMS_PER_BATCH "
                         f"({ims_per_batch})")
    return dataset_size // ims_per_batch


class TrainingBatches:
    """The per-process batches of iterations start..end: epoch e's order is a permutation seeded by (seed, e),
    cut into global batches of ims_per_batch; process `rank` takes every world_size-th image of each. Flips are
    drawn per (seed, epoch, position). All of it is a function of the iteration, so a resumed run continues
    with exactly the batches the interrupted one would have seen."""

    def __init__(self, dataset_size: int, ims_per_batch: int, rank: int, world_size: int, seed: int,
                 hflip_prob: float, start_iter: int, max_iter: int):
        if ims_per_batch % world_size:
            raise ValueError(f"SOLVER.IMS_PER_BATCH ({ims_per_batch}) must be divisible by the number of "
                             f"processes ({world_size})")
        self.iters_per_epoch = iterations_per_epoch(dataset_size, ims_per_batch)
        self.size, self.batch, self.rank, self.world = dataset_size, ims_per_batch, rank, world_size
        self.seed, self.hflip_prob, self.start, self.end = seed, hflip_prob, start_iter, max_iter

    def __len__(self) -> int:
        return self.end - self.start

    def __iter__(self) -> Iterator[list[tuple[int, bool]]]:
        order, order_epoch = None, -1
        for iteration in range(self.start, self.end):
            epoch, step = divmod(iteration, self.iters_per_epoch)
            if epoch != order_epoch:
                rng = np.random.default_rng([self.seed, epoch])
                order, flips = rng.permutation(self.size), rng.random(self.size)
                order_epoch = epoch
            positions = range(step * self.batch + self.rank, (step + 1) * self.batch, self.world)
            yield [(int(order[p]), bool(flips[p] < self.hflip_prob)) for p in positions]
