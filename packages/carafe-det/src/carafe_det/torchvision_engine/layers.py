"""The parts of the torchvision engine's detectors that its configs choose between: torchvision's own or the
variants that compute what mmdetection v2 (and detectron2) compute at test time - aligned RoIAlign, exact anchors,
the resized size rounded to the nearest pixel and masks pasted by bilinear sampling at the boxes' coordinates.
The configs in configs/torchvision/mmdet/ select the latter for checkpoints converted by carafe-det-convert."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops.poolers import _convert_to_roi_format, _setup_scales

POOLER_TYPES = ("ROIAlign", "ROIAlignV2")  # detectron2's names: unaligned (torchvision's) | aligned (half-pixel)
ANCHOR_STYLES = ("torchvision", "exact")
FEATURE_NAMES = ["0", "1", "2", "3"]


class AlignedMultiScaleRoIAlign(MultiScaleRoIAlign):
    """torchvision's MultiScaleRoIAlign (the same FPN level mapping: canonical size 224 at level 4, which is
    mmdetection's finest_scale 56 at level 0) with RoIAlign's aligned=True, the half-pixel-corrected sampling of
    detectron2's ROIAlignV2 and of mmcv's RoIAlign (mmdetection's default). torchvision's own calls roi_align with
    aligned=False; this forward follows its _multiscale_roi_align otherwise."""

    def forward(self, x: Dict[str, Tensor], boxes: List[Tensor], image_shapes: List[Tuple[int, int]]) -> Tensor:
        features = [x[name] for name in self.featmap_names]
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(features, image_shapes, self.canonical_scale,
                                                         self.canonical_level)
        scales, mapper = self.scales, self.map_levels
        assert scales is not None and mapper is not None  # set above (TorchScript needs the refinement)
        rois = _convert_to_roi_format(boxes)
        levels = mapper(boxes)
        size = self.output_size
        result = features[0].new_zeros((rois.shape[0], features[0].shape[1], size[0], size[1]))
        for level, (feature, scale) in enumerate(zip(features, scales)):
            index = torch.where(levels == level)[0]
            pooled = roi_align(feature, rois[index], [size[0], size[1]], scale, self.sampling_ratio, True)
            result[index] = pooled.to(result.dtype)
        return result


def build_roi_pooler(output_size: int, pooler_type: str, sampling_ratio: int) -> MultiScaleRoIAlign:
    """RoIAlign over P2..P5: MODEL.ROI_*_HEAD.POOLER_TYPE ROIAlign (torchvision's, unaligned) or ROIAlignV2
    (aligned), with POOLER_SAMPLING_RATIO samples per bin side (0: adaptive, ceil(bin size))."""
    pooler = AlignedMultiScaleRoIAlign if pooler_type == "ROIAlignV2" else MultiScaleRoIAlign
    return pooler(FEATURE_NAMES, output_size=output_size, sampling_ratio=sampling_ratio)


class ExactAnchorGenerator(AnchorGenerator):
    """Anchors as mmdetection v2's AnchorGenerator and detectron2's DefaultAnchorGenerator place them (offset 0):
    cell anchors of exactly size / sqrt(ratio) x size * sqrt(ratio), not rounded to whole pixels as torchvision's,
    and each level's stride given (4, 8, ..., 64) rather than the padded image size // the feature map size,
    which torchvision uses and which is not the level's stride when a map's size was rounded up (P6 of an image
    padded to 32 whose P5 has an odd size)."""

    def __init__(self, sizes, aspect_ratios, strides: List[int]):
        super().__init__(sizes, aspect_ratios)
        self.strides = [int(s) for s in strides]

    def generate_anchors(self, scales: List[int], aspect_ratios: List[float], dtype: torch.dtype = torch.float32,
                         device: torch.device = torch.device("cpu")) -> Tensor:
        scales_t = torch.as_tensor(scales, dtype=dtype, device=device)
        ratios = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
        heights = torch.sqrt(ratios)[:, None] * scales_t[None, :]  # ratio = height / width, ratios-major order
        widths = (1 / torch.sqrt(ratios))[:, None] * scales_t[None, :]
        return torch.stack([-widths, -heights, widths, heights], dim=2).reshape(-1, 4) / 2

    def forward(self, image_list: ImageList, feature_maps: List[Tensor]) -> List[Tensor]:
        grid_sizes = [feature_map.shape[-2:] for feature_map in feature_maps]
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        strides = [[torch.tensor(s, dtype=torch.int64, device=device)] * 2 for s in self.strides]
        self.set_cell_anchors(dtype, device)
        per_level = self.grid_anchors(grid_sizes, strides)
        return [torch.cat(per_level) for _ in range(len(image_list.image_sizes))]


def build_anchor_generator(sizes: tuple, aspect_ratios: tuple, style: str) -> AnchorGenerator:
    """One cell-anchor set per level (strides 4, 8, ...): torchvision's AnchorGenerator (style 'torchvision') or
    ExactAnchorGenerator ('exact')."""
    ratios = (tuple(aspect_ratios),) * len(sizes)
    if style == "exact":
        return ExactAnchorGenerator(sizes, ratios, [4 * 2 ** level for level in range(len(sizes))])
    return AnchorGenerator(sizes, ratios)


class TrainTestTransform(GeneralizedRCNNTransform):
    """torchvision's transform, which resizes to one size in train and eval mode, with the sizes switched by the
    mode: the training sizes after train(), the test sizes after eval(). (A method, not a forward hook, so that
    torch.jit.script compiles the model: a scripted model keeps the sizes of the mode it was scripted in.)"""

    def __init__(self, train_sizes: tuple, test_sizes: tuple, image_mean, image_std, size_divisible: int):
        super().__init__(*train_sizes, image_mean, image_std, size_divisible=size_divisible)
        self.train_sizes, self.test_sizes = train_sizes, test_sizes

    def train(self, mode: bool = True):
        super().train(mode)
        self.min_size, self.max_size = self.train_sizes if mode else self.test_sizes
        return self


MASK_PASTES = ("torchvision", "exact")
RESIZE_ROUNDINGS = ("floor", "nearest")


def paste_masks_exact(masks: Tensor, boxes: Tensor, height: int, width: int, chunk: int = 32) -> Tensor:
    """(N, 1, M, M) mask probabilities -> (N, 1, height, width): each image pixel centre (x + 0.5, y + 0.5) reads
    its box's mask by bilinear interpolation at the box's exact (float) coordinates, zero outside the box - the
    pasting of mmdetection v2's FCNMaskHead (_do_paste_mask) and detectron2's paste_masks_in_image, written from
    that definition. torchvision's paste_masks_in_image instead resizes a 1-pixel padded mask to the integer box."""
    out = masks.new_zeros((masks.shape[0], 1, height, width))
    ys = torch.arange(height, device=masks.device, dtype=masks.dtype) + 0.5
    xs = torch.arange(width, device=masks.device, dtype=masks.dtype) + 0.5
    for start in range(0, masks.shape[0], chunk):
        box = boxes[start:start + chunk].to(masks.dtype)
        x0, y0, x1, y1 = box[:, 0:1], box[:, 1:2], box[:, 2:3], box[:, 3:4]
        grid_x = ((xs[None] - x0) / (x1 - x0) * 2 - 1)[:, None, :].expand(-1, height, -1)
        grid_y = ((ys[None] - y0) / (y1 - y0) * 2 - 1)[:, :, None].expand(-1, -1, width)
        grid = torch.stack([grid_x, grid_y], dim=3)
        out[start:start + chunk] = F.grid_sample(masks[start:start + chunk], grid, align_corners=False)
    return out


class ExactTransform(TrainTestTransform):
    """TrainTestTransform with mmdetection's (and detectron2's) test-time geometry: the resized image is
    round(h * scale) x round(w * scale) (mmcv's imrescale; torchvision's interpolate floors) when round_size, and
    masks are pasted by paste_masks_exact when exact_paste. Resizing stays bilinear without antialiasing (cv2's
    INTER_LINEAR, as mmdetection's Resize)."""

    def __init__(self, train_sizes: tuple, test_sizes: tuple, image_mean, image_std, size_divisible: int,
                 round_size: bool, exact_paste: bool):
        super().__init__(train_sizes, test_sizes, image_mean, image_std, size_divisible)
        self.round_size, self.exact_paste = round_size, exact_paste

    def resize(self, image: Tensor, target: Optional[Dict[str, Tensor]] = None
               ) -> Tuple[Tensor, Optional[Dict[str, Tensor]]]:
        height, width = image.shape[-2], image.shape[-1]
        side = self.torch_choice(self.min_size) if self.training else self.min_size[-1]
        scale = min(float(side) / min(height, width), float(self.max_size) / max(height, width))
        offset = 0.5 if self.round_size else 0.0  # round, or floor as torchvision
        size = [int(height * scale + offset), int(width * scale + offset)]
        image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
        if target is None:
            return image, target
        target["boxes"] = resize_boxes(target["boxes"], (height, width), (size[0], size[1]))
        if "masks" in target:
            target["masks"] = F.interpolate(target["masks"][:, None].float(), size=size)[:, 0].byte()
        return image, target

    def postprocess(self, result: List[Dict[str, Tensor]], image_shapes: List[Tuple[int, int]],
                    original_image_sizes: List[Tuple[int, int]]) -> List[Dict[str, Tensor]]:
        if self.training:
            return result
        for prediction, resized, original in zip(result, image_shapes, original_image_sizes):
            prediction["boxes"] = resize_boxes(prediction["boxes"], resized, original)
            if "masks" in prediction:
                masks, boxes = prediction["masks"], prediction["boxes"]
                prediction["masks"] = (paste_masks_exact(masks, boxes, original[0], original[1]) if self.exact_paste
                                       else paste_masks_in_image(masks, boxes, original))
        return result


def build_transform(train_sizes: tuple, test_sizes: tuple, image_mean, image_std, size_divisible: int,
                    resize_rounding: str = "floor", mask_paste: str = "torchvision") -> TrainTestTransform:
    """TrainTestTransform (torchvision's geometry), or ExactTransform when INPUT.RESIZE_ROUNDING is 'nearest' or
    MODEL.ROI_MASK_HEAD.PASTE 'exact'."""
    if resize_rounding == "floor" and mask_paste == "torchvision":
        return TrainTestTransform(train_sizes, test_sizes, image_mean, image_std, size_divisible)
    return ExactTransform(train_sizes, test_sizes, image_mean, image_std, size_divisible,
                          round_size=resize_rounding == "nearest", exact_paste=mask_paste == "exact")
