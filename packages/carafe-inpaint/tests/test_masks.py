"""The training masks (DeepFill v2: a box united with brush strokes): determinism by seed, the box's placement and
size, the union, the statistics of the holes; the coverage-binned evaluation set and the mask-set command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_command
from scipy import ndimage

from carafe_inpaint import read_mask, seeded_mask
from carafe_inpaint.cli.make_data import main as make_data_main
from carafe_inpaint.data.mask_set import BIN_LABELS, COVERAGE_BINS, binned_candidates, coverage_bin, mask_bin
from carafe_inpaint.data.masks import MAX_STROKES, box_mask, brush_stroke_mask, free_form_mask, random_box, seeded_rng


def test_same_seed_same_mask_in_any_order():
    first = [seeded_mask(256, 256, seed=7, index=i) for i in range(5)]
    again = [seeded_mask(256, 256, seed=7, index=i) for i in reversed(range(5))][::-1]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], seeded_mask(256, 256, seed=8, index=0))
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    assert np.array_equal(free_form_mask(64, 96, rng_a), free_form_mask(64, 96, rng_b))


@pytest.mark.parametrize("height, width, low, high", [(256, 256, 96, 128), (64, 64, 24, 32), (128, 320, 48, 64)])
def test_box_lies_inside_the_image_with_the_official_size_range(height, width, low, high):
    # inpaint.yml at 256x256: a 128x128 box shrunk by 0..16 pixels on both sides of each axis; the side along W
    # scales with W / 256 (at 128x320: 160 - 2 * 0..20)
    boxes = np.array([random_box(height, width, seeded_rng(0, i)) for i in range(2000)])
    top, left, box_h, box_w = boxes.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + box_h <= height).all() and (left + box_w <= width).all()
    assert box_h.min() == low and box_h.max() == high and (box_h % 2 == low % 2).all()
    w_low, w_high = round(low * width / height), round(high * width / height)
    assert box_w.min() == w_low and box_w.max() == w_high
    # uniformly placed: the box's start (before the shrink) reaches both ends of [0, side - BOX_SIZE)
    assert (top - (high - box_h) // 2).min() == 0 and (top - (high - box_h) // 2).max() == height - high - 1
    mask = box_mask(height, width, seeded_rng(0, 1))
    t, l, h, w = random_box(height, width, seeded_rng(0, 1))
    assert mask.sum() == h * w and mask[t:t + h, l:l + w].all()


def test_training_mask_is_the_union_of_the_box_and_the_strokes():
    for index in range(20):
        rng = seeded_rng(4, index)  # the training mask draws the box first, then the strokes, from one generator
        box, strokes = box_mask(64, 80, rng), brush_stroke_mask(64, 80, rng)
        union = seeded_mask(64, 80, 4, index)
        assert np.array_equal(union, np.maximum(box, strokes))
        assert (union >= box).all() and (union >= strokes).all()
        assert union.sum() > box.sum() and union.sum() > strokes.sum()  # both parts contribute


@pytest.fixture(scope="module")
def masks_256():
    return np.stack([seeded_mask(256, 256, seed=0, index=i) for i in range(300)])


def test_masks_are_binary_float_holes(masks_256):
    assert masks_256.dtype == np.float32 and masks_256.shape == (300, 256, 256)
    assert set(np.unique(masks_256).tolist()) == {0.0, 1.0}


def test_hole_coverage_statistics(masks_256):
    # measured over 2000 masks: 31.0% +- 6.8%, 5%-95%: 21%-43%, from 15% to 54%
    coverage = masks_256.mean(axis=(1, 2))
    assert 0.28 < coverage.mean() < 0.34
    assert 0.05 < coverage.std() < 0.09
    assert 0.17 < np.quantile(coverage, 0.05) < 0.25 and 0.38 < np.quantile(coverage, 0.95) < 0.48
    assert coverage.min() >= 96 * 96 / 256**2  # never less than the smallest box
    assert coverage.max() < 0.65
    # holes are spread over the image; the flips of the strokes and the uniform box keep it symmetric
    quarters = [masks_256[:, :128, :128], masks_256[:, :128, 128:], masks_256[:, 128:, :128], masks_256[:, 128:, 128:]]
    assert all(0.2 < q.mean() < 0.42 for q in quarters)
    assert abs(masks_256[:, :, :128].mean() - masks_256[:, :, 128:].mean()) < 0.02
    assert abs(masks_256[:, :128].mean() - masks_256[:, 128:].mean()) < 0.02


def test_strokes_alone_keep_the_official_statistics():
    strokes = np.stack([brush_stroke_mask(256, 256, seeded_rng(0, i)) for i in range(300)])
    coverage = strokes.mean(axis=(1, 2))
    assert 0.12 < coverage.mean() < 0.18 and 0.05 < coverage.std() < 0.11
    assert 0.01 < np.quantile(coverage, 0.05) < 0.06 and 0.22 < np.quantile(coverage, 0.95) < 0.38
    disc = np.hypot(*np.mgrid[-5:6, -5:6]) <= 5  # 11 pixels across: fits inside a stroke of width >= 12
    kept = []
    for mask in strokes[:100]:
        hole = mask > 0
        _, components = ndimage.label(hole)
        assert 1 <= components <= MAX_STROKES  # each brush stroke is one connected polyline
        kept.append(ndimage.binary_opening(hole, structure=disc).sum() / hole.sum())
    # opening with an 11-pixel disc removes only the jagged rims where segments meet
    assert np.mean(kept) > 0.9


def test_other_sizes_keep_the_coverage():
    small = np.mean([seeded_mask(64, 64, 0, i).mean() for i in range(300)])
    wide = np.mean([seeded_mask(128, 320, 0, i).mean() for i in range(100)])
    assert 0.26 < small < 0.34 and 0.22 < wide < 0.4
    assert seeded_mask(30, 50, 0, 0).shape == (30, 50) and seeded_mask(1, 1, 0, 0).shape == (1, 1)
    for generate in (seeded_mask, lambda h, w, s, i: box_mask(h, w, seeded_rng(s, i))):
        with pytest.raises(ValueError, match="size must be positive"):
            generate(0, 8, 0, 0)


def test_coverage_bins_include_the_lower_end_only():
    assert [coverage_bin(h, 100) for h in (9, 10, 19, 20, 59, 60)] == [-1, 0, 0, 1, 4, -1]
    assert coverage_bin(1, 3) == 2  # 33.3%: exact integer comparisons, no float rounding at the edges
    assert BIN_LABELS == ("10-20%", "20-30%", "30-40%", "40-50%", "50-60%")


def test_binned_set_takes_each_bins_first_candidates_in_turn():
    candidates = binned_candidates(32, 5, 12)
    assert candidates[:7] == binned_candidates(32, 5, 7)  # a smaller set is a prefix of a larger one
    # recomputed directly: every candidate up to the last one used, binned; bin b's entries are its first ones
    bins = [mask_bin(seeded_mask(32, 32, 5, i)) for i in range(max(candidates) + 1)]
    for b in range(len(COVERAGE_BINS)):
        entries = [c for j, c in enumerate(candidates) if j % len(COVERAGE_BINS) == b]
        assert entries == [i for i, k in enumerate(bins) if k == b][:len(entries)]


def test_make_data_writes_an_equally_binned_reproducible_set_and_the_photographs(tmp_path, capsys):
    assert make_data_main(["--output", str(tmp_path / "set"), "--count", "10", "--size", "48", "--seed", "5",
                           "--photographs", str(tmp_path / "photos")]) == 0
    files = sorted((tmp_path / "set").glob("mask_*.png"))
    assert [f.name for f in files] == [f"mask_{i:05d}.png" for i in range(10)]
    stats = json.loads((tmp_path / "set" / "stats.json").read_text())
    assert stats["count"] == 10 and stats["size"] == 48 and stats["seed"] == 5
    assert stats["masks_per_bin"] == dict.fromkeys(BIN_LABELS, 2)
    fractions = []
    for j, (path, record) in enumerate(zip(files, stats["masks"])):
        mask = read_mask(path, (48, 48))
        assert record["file"] == path.name and record["bin"] == BIN_LABELS[j % 5]
        low, high = COVERAGE_BINS[j % 5]
        fraction = mask.sum() / mask.size
        assert low / 100 <= fraction < high / 100 and record["hole_fraction"] == pytest.approx(fraction)
        assert np.array_equal(mask, seeded_mask(48, 48, 5, record["candidate"]))  # reproducible from the seed
        fractions.append(fraction)
    assert stats["hole_fraction_mean"] == pytest.approx(np.mean(fractions))
    assert "wrote 10 masks" in capsys.readouterr().out
    assert [len(list((tmp_path / "photos" / split).glob("*.png"))) for split in ("train", "val")] == [12, 3]


@pytest.mark.parametrize("args, message", [
    (["--count", "0"], "--count must be >= 1, got 0"),
    (["--size", "2"], "--size must be >= 4, got 2"),
    # at 4x4 the smallest box is 2x2, a quarter of the image: no mask covers 10-20%
    (["--size", "4", "--count", "1"], "4x4 masks of seed 2019: 5000 candidates did not fill the coverage bin(s) "
                                      "10-20%; use a larger size"),
    (["--count", "many"], "argument --count: invalid int value: 'many' (see --help)"),
])
def test_make_data_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = run_command("carafe_inpaint.cli.make_data", "--output", tmp_path / "bad", *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"carafe-inpaint-make-data: error: {message}\n"
