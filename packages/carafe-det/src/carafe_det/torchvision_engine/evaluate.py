"""COCO evaluation of the torchvision engine's models with pycocotools: box AP (and mask AP for Mask R-CNN), the
numbers the paper reports. Each process runs its share of the images; the main process scores them all."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pycocotools.mask as mask_util
import torch
import torch.distributed as dist
from carafe_engine import get_rank, get_world_size
from pycocotools.cocoeval import COCOeval
from torch import nn
from torchvision.ops import box_convert

from .data import CocoDetectionDataset

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _to_coco_results(dataset: CocoDetectionDataset, image_id: int, output: dict, with_masks: bool) -> list[dict]:
    xywh = box_convert(output["boxes"].cpu(), "xyxy", "xywh").tolist()
    labels = output["labels"].cpu().tolist()
    scores = output["scores"].cpu().tolist()
    results = [{"image_id": image_id, "category_id": dataset.category_ids[label - 1], "bbox": box, "score": score}
               for box, label, score in zip(xywh, labels, scores)]
    if with_masks:
        binary = (output["masks"][:, 0] >= 0.5).cpu().numpy().astype(np.uint8)
        for result, mask in zip(results, binary):
            rle = mask_util.encode(np.asfortranarray(mask))
            rle["counts"] = rle["counts"].decode("ascii")
            result["segmentation"] = rle
    return results


@torch.no_grad()
def predict_dataset(model: nn.Module, dataset: CocoDetectionDataset, device: torch.device, batch_size: int = 2,
                    with_masks: bool = False) -> list[dict]:
    """COCO-format results of this process's share of the images (every world_size-th)."""
    model.eval()
    results = []
    indices = list(range(get_rank(), len(dataset), get_world_size()))
    for start in range(0, len(indices), batch_size):
        batch = [dataset[i] for i in indices[start:start + batch_size]]
        outputs = model([image.to(device) for image, _ in batch])
        for (_, target), output in zip(batch, outputs):
            results += _to_coco_results(dataset, target["image_id"], output, with_masks)
    return results


def score(dataset: CocoDetectionDataset, results: list[dict], with_masks: bool) -> dict:
    """{'bbox': {'AP': .., 'AP50': .., ...}, 'segm': {...}} in percent (COCO's summary numbers; None where the
    data has no object of that size)."""
    metrics = {}
    for iou_type in ("bbox", "segm") if with_masks else ("bbox",):
        if not results:  # pycocotools cannot load an empty result list; nothing detected scores zero
            metrics[iou_type] = {name: 0.0 for name in STAT_NAMES}
            continue
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' prints
            detections = dataset.coco.loadRes(results)
            evaluator = COCOeval(dataset.coco, detections, iou_type)
            evaluator.params.imgIds = dataset.image_ids
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        # -1 means "no ground truth of that size": None (null in JSON) rather than a score
        metrics[iou_type] = {name: float(v) * 100 if v >= 0 else None
                             for name, v in zip(STAT_NAMES, evaluator.stats[:6])}
    return metrics


def evaluate(model: nn.Module, dataset: CocoDetectionDataset, device: torch.device, with_masks: bool,
             batch_size: int = 2) -> dict | None:
    """Runs on every process (batch_size images at a time, padded to a common size); returns the metrics on the
    main process and None on the others."""
    results = predict_dataset(model, dataset, device, batch_size=batch_size, with_masks=with_masks)
    if get_world_size() > 1:
        gathered = [None] * get_world_size()
        dist.all_gather_object(gathered, results)
        results = [r for part in gathered for r in part]
    if get_rank() != 0:
        return None
    return score(dataset, results, with_masks)
