"""Evaluation metrics against hand-computed values: ignored pixels, accumulation over the whole set."""

from __future__ import annotations

import math

import pytest
import torch

from carafe_seg.evaluation import SegmentationMetrics

X = -1  # ignored


def test_iou_and_pixel_accuracy_by_hand():
    metrics = SegmentationMetrics(3)
    target = torch.tensor([[0, 0, 1, 1], [2, 2, X, X]])
    prediction = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])  # the last two pixels are ignored whatever they say
    metrics.update(prediction, target)
    result = metrics.compute(["a", "b", "c"])
    # class 0: truth {0,1}, predicted {0,5} -> I 1, U 3; class 1: truth {2,3}, predicted {1,2,3} -> I 2, U 3;
    # class 2: truth {4,5}, predicted {4} -> I 1, U 2
    assert result["per_class_IoU"] == pytest.approx({"a": 100 / 3, "b": 200 / 3, "c": 50})
    assert result["mIoU"] == pytest.approx((100 / 3 + 200 / 3 + 50) / 3)
    assert result["pixel_accuracy"] == pytest.approx(100 * 4 / 6)
    assert result["classes_evaluated"] == 3


def test_metrics_accumulate_over_the_set_not_per_image():
    metrics = SegmentationMetrics(2)
    # image 1: class 0 perfect over 1 pixel; image 2: class 0 wrong over 3 pixels
    metrics.update(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 1, 1, 1]))
    metrics.update(torch.tensor([1, 1, 1, 0]), torch.tensor([0, 0, 0, 0]))
    result = metrics.compute()
    # summed: class 0 I 2, U 1+4+... : truth {a0, b0..b3} = 5 pixels, predicted {a0, b3} -> I 2, U 5
    assert result["per_class_IoU"]["class_1"] == pytest.approx(100 * 2 / 5)
    # class 1: truth {a1, a2, a3}, predicted {a1..a3, b0..b2} -> I 3, U 6
    assert result["per_class_IoU"]["class_2"] == pytest.approx(100 * 3 / 6)
    assert result["pixel_accuracy"] == pytest.approx(100 * 5 / 8)


def test_classes_that_never_occur_are_left_out_of_the_mean():
    metrics = SegmentationMetrics(150)
    metrics.update(torch.tensor([4, 4, 7]), torch.tensor([4, 4, 4]))
    result = metrics.compute()
    iou = result["per_class_IoU"]
    assert iou["class_5"] == pytest.approx(100 * 2 / 3) and iou["class_8"] == 0.0  # predicted, never true: counts
    assert iou["class_1"] is None and result["classes_evaluated"] == 2
    assert result["mIoU"] == pytest.approx(100 / 3)
    assert not any(isinstance(v, float) and math.isnan(v) for v in iou.values())


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"prediction \(2, 3\) and target \(3, 2\) differ in shape"):
        SegmentationMetrics(3).update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
