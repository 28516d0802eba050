"""The free-form mask generator: determinism by seed, the statistics of its holes, and the mask-set command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from carafe_inpaint import free_form_mask, read_mask, seeded_mask
from carafe_inpaint.cli.make_data import main as make_data_main
from carafe_inpaint.data.masks import MAX_STROKES


def test_same_seed_same_mask_in_any_order():
    first = [seeded_mask(256, 256, seed=7, index=i) for i in range(5)]
    again = [seeded_mask(256, 256, seed=7, index=i) for i in reversed(range(5))][::-1]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], seeded_mask(256, 256, seed=8, index=0))
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    assert np.array_equal(free_form_mask(64, 96, rng_a), free_form_mask(64, 96, rng_b))


@pytest.fixture(scope="module")
def masks_256():
    return np.stack([seeded_mask(256, 256, seed=0, index=i) for i in range(300)])


def test_masks_are_binary_float_holes(masks_256):
    assert masks_256.dtype == np.float32 and masks_256.shape == (300, 256, 256)
    assert set(np.unique(masks_256).tolist()) == {0.0, 1.0}
    assert masks_256.reshape(300, -1).sum(1).min() > 0  # every mask has a hole


def test_hole_coverage_statistics(masks_256):
    # the official 256x256 parameters give holes of ~15% of the image on average, from ~3% to ~30% (5%-95%)
    coverage = masks_256.mean(axis=(1, 2))
    assert 0.12 < coverage.mean() < 0.18
    assert 0.05 < coverage.std() < 0.11
    assert 0.01 < np.quantile(coverage, 0.05) < 0.06 and 0.22 < np.quantile(coverage, 0.95) < 0.38
    assert coverage.max() < 0.65
    # holes are spread over the image: every quarter of it is hit by some masks, none by most
    quarters = [masks_256[:, :128, :128], masks_256[:, :128, 128:], masks_256[:, 128:, :128], masks_256[:, 128:, 128:]]
    assert all(0.08 < q.mean() < 0.22 for q in quarters)
    # the flips make the hole distribution left-right and top-bottom symmetric
    assert abs(masks_256[:, :, :128].mean() - masks_256[:, :, 128:].mean()) < 0.02
    assert abs(masks_256[:, :128].mean() - masks_256[:, 128:].mean()) < 0.02


def test_strokes_are_connected_and_at_least_12_pixels_wide(masks_256):
    disc = np.hypot(*np.mgrid[-5:6, -5:6]) <= 5  # 11 pixels across: fits inside a stroke of width >= 12
    kept = []
    for mask in masks_256[:100]:
        hole = mask > 0
        _, components = ndimage.label(hole)
        assert 1 <= components <= MAX_STROKES  # each brush stroke is one connected polyline
        kept.append(ndimage.binary_opening(hole, structure=disc).sum() / hole.sum())
    # opening with an 11-pixel disc removes only the jagged rims where segments meet
    assert np.mean(kept) > 0.9


def test_other_sizes_keep_the_coverage():
    small = np.mean([seeded_mask(64, 64, 0, i).mean() for i in range(300)])
    wide = np.mean([seeded_mask(128, 320, 0, i).mean() for i in range(100)])
    assert 0.11 < small < 0.19 and 0.1 < wide < 0.3  # non-square: the stroke scale follows the diagonal
    assert seeded_mask(30, 50, 0, 0).shape == (30, 50)
    with pytest.raises(ValueError, match="size must be positive"):
        seeded_mask(0, 8, 0, 0)


def test_make_data_writes_reproducible_mask_files_and_the_photographs(tmp_path, capsys):
    assert make_data_main(["--output", str(tmp_path / "set"), "--count", "6", "--size", "64", "--seed", "5",
                           "--photographs", str(tmp_path / "photos")]) == 0
    files = sorted((tmp_path / "set").glob("mask_*.png"))
    assert [f.name for f in files] == [f"mask_{i:05d}.png" for i in range(6)]
    for i, path in enumerate(files):
        assert np.array_equal(read_mask(path, (64, 64)), seeded_mask(64, 64, 5, i))
    stats = json.loads((tmp_path / "set" / "stats.json").read_text())
    assert stats["count"] == 6 and stats["size"] == 64
    assert stats["hole_fraction_mean"] == pytest.approx(np.mean([seeded_mask(64, 64, 5, i).mean() for i in range(6)]))
    assert "wrote 6 masks" in capsys.readouterr().out
    assert [len(list((tmp_path / "photos" / split).glob("*.png"))) for split in ("train", "val")] == [12, 3]
    assert make_data_main(["--output", str(tmp_path / "bad"), "--count", "0"]) == 2
    assert capsys.readouterr().err == "carafe-inpaint-make-data: error: --count must be >= 1, got 0\n"
