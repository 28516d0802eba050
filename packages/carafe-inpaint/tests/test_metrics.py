"""Metrics against values computed by hand, and `evaluate` on a generator whose output is known."""

from __future__ import annotations

import math

import pytest
import torch
from skimage.metrics import structural_similarity

from carafe_inpaint import ValidationPairs, evaluate, image_metrics, open_source


def test_metrics_by_hand():
    target = torch.zeros(2, 3, 8, 8)           # 0.5 in [0, 1]
    output = target.clone()
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, :4] = 1                          # image 0: top half is the hole
    output[0, :, :4] = 0.4                      # +0.2 in [0, 1] inside the hole, exact elsewhere
    metrics = image_metrics(output, target, mask)
    assert metrics["l1_hole"][0].item() == pytest.approx(0.2)
    assert metrics["l1"][0].item() == pytest.approx(0.1)
    assert metrics["psnr"][0].item() == pytest.approx(10 * math.log10(1 / (0.5 * 0.2**2)), rel=1e-5)
    assert math.isnan(metrics["l1_hole"][1].item())     # no hole
    assert metrics["psnr"][1].item() == pytest.approx(100.0)  # identical images: MSE floored at 1e-10
    assert metrics["ssim"][1].item() == pytest.approx(1.0)
    expected_ssim = structural_similarity(((output[0] + 1) / 2).permute(1, 2, 0).double().numpy(),
                                          ((target[0] + 1) / 2).permute(1, 2, 0).double().numpy(),
                                          channel_axis=2, data_range=1.0)
    assert metrics["ssim"][0].item() == pytest.approx(expected_ssim)


class ConstantGenerator(torch.nn.Module):
    """Predicts one value everywhere: completing with 0 reproduces the masked input exactly."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, image, mask):
        return torch.full_like(image, self.value)


def test_evaluate_scores_the_model_and_the_masked_input(photo_folder):
    pairs = ValidationPairs(open_source(str(photo_folder)), 32, mask_seed=0, masks_per_image=2)
    grey = evaluate(ConstantGenerator(0.0), pairs, torch.device("cpu"), batch_size=4)
    assert grey["pairs"] == 6
    for name in ("l1_hole", "l1", "psnr", "ssim"):
        assert grey["model"][name] == pytest.approx(grey["masked_input"][name])
    white = evaluate(ConstantGenerator(1.0), pairs, torch.device("cpu"), batch_size=5)
    assert white["masked_input"] == pytest.approx(grey["masked_input"])  # batching does not change the means
    # the per-image average, recomputed directly
    psnrs = []
    for i in range(len(pairs)):
        image, mask = pairs[i]["image"][None], pairs[i]["mask"][None]
        psnrs.append(image_metrics(image * (1 - mask) + mask, image, mask)["psnr"].item())
    assert white["model"]["psnr"] == pytest.approx(sum(psnrs) / len(psnrs))


def hand_made_pairs() -> list[dict]:
    """10x10 images at 0.5 ([0, 1]) with holes of 19, 20, 25, 59, 60 and 5 pixels: bins 10-20%, 20-30% (the
    lower end is in the bin), 20-30%, 50-60%, none (60% is past the last bin) and none."""
    pairs = []
    for index, holes in enumerate((19, 20, 25, 59, 60, 5)):
        mask = torch.zeros(1, 10, 10)
        mask.view(-1)[:holes] = 1
        pairs.append({"image": torch.zeros(3, 10, 10), "mask": mask, "index": index})
    return pairs


def test_per_bin_metrics_by_hand():
    pairs = hand_made_pairs()
    # the generator predicts 0.4 ([-1, 1]) = 0.7 in [0, 1]: an error of 0.2 on every hole pixel, none elsewhere
    results = evaluate(ConstantGenerator(0.4), pairs, torch.device("cpu"), batch_size=4)
    assert results["pairs"] == 6 and list(results["bins"]) == ["10-20%", "20-30%", "30-40%", "40-50%", "50-60%"]
    assert [b["pairs"] for b in results["bins"].values()] == [1, 2, 0, 0, 1]

    def psnr(holes: int) -> float:  # MSE = 0.2^2 x the hole fraction
        return 10 * math.log10(1 / (0.04 * holes / 100))

    bins = results["bins"]
    assert bins["10-20%"]["model"]["psnr"] == pytest.approx(psnr(19))
    assert bins["20-30%"]["model"]["psnr"] == pytest.approx((psnr(20) + psnr(25)) / 2)
    assert bins["20-30%"]["model"]["l1"] == pytest.approx(0.2 * (0.20 + 0.25) / 2)
    assert bins["50-60%"]["model"]["l1_hole"] == pytest.approx(0.2)
    assert bins["30-40%"] == {"pairs": 0}  # an empty bin: no NaN means
    # the masked input (hole at 0 = 0.5 in [0, 1]) equals the target: L1 0, PSNR at the 1e-10 MSE floor
    assert bins["20-30%"]["masked_input"]["l1_hole"] == 0 and bins["20-30%"]["masked_input"]["psnr"] == 100
    # the overall means are over all six pairs, those outside every bin included
    assert results["model"]["psnr"] == pytest.approx(sum(psnr(h) for h in (19, 20, 25, 59, 60, 5)) / 6)
    # and each bin's means are those of evaluating its pairs alone
    alone = evaluate(ConstantGenerator(0.4), pairs[1:3], torch.device("cpu"), batch_size=1)
    assert alone["model"] == pytest.approx(bins["20-30%"]["model"])
    assert alone["bins"]["20-30%"]["model"] == pytest.approx(bins["20-30%"]["model"])
