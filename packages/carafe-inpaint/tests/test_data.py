"""Data sources (folders, Places365 file lists, the embedded photographs), the seeded training views, the fixed
validation pairs, and the errors for bad images and masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from carafe_engine import DatasetError, Sample, TrainingSampler

from carafe_inpaint import DataError, ImageReadError, TrainingViews, ValidationPairs, open_source, \
    read_mask, seeded_mask
from carafe_inpaint.data.embedded import TRAIN_PHOTOS, VAL_PHOTOS, photographs
from carafe_inpaint.data.images import write_mask
from carafe_inpaint.data.mask_set import binned_candidates, mask_bin
from carafe_inpaint.visualization import pairs_per_bin


def test_embedded_photographs_are_real_rgb_and_split():
    train, val = photographs("train"), photographs("val")
    assert len(train) == len(TRAIN_PHOTOS) and len(val) == len(VAL_PHOTOS)
    assert not {n for n, _ in train} & {n for n, _ in val}
    for name, image in train + val:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
        assert min(image.shape[:2]) >= 100 and image.std() > 10, name  # photographs, not flat placeholders


def test_folder_and_file_list_sources(tmp_path, photo_folder):
    (photo_folder / "sub").mkdir()
    Image.new("RGB", (20, 30), (10, 20, 30)).save(photo_folder / "sub" / "deep.PNG")
    (photo_folder / "notes.txt").write_text("not an image")
    source = open_source(str(photo_folder))
    assert len(source) == 4 and source.name(3).endswith("deep.PNG")
    assert source.load(3).shape == (30, 20, 3)
    # a Places365 list: a path (leading '/' relative to the root) and a class label per line
    listing = tmp_path / "places365_train_standard.txt"
    listing.write_text("/img_0.jpg 0\n# comment\n\n/sub/deep.PNG 12\n")
    listed = open_source(str(listing), root=str(photo_folder))
    assert len(listed) == 2 and listed.load(1).shape == (30, 20, 3)
    # without a root, paths are relative to the list's folder
    (photo_folder / "val.txt").write_text("img_1.png 3\n")
    assert open_source(str(photo_folder / "val.txt"), key="DATASETS.VAL").load(0).shape == (48, 40, 3)


def test_bad_sources_name_the_key_and_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"DATASETS.TRAIN: the folder .*empty holds no images"):
        open_source(str(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"DATASETS.VAL: '.*missing' is neither 'embedded' nor an existing folder"):
        open_source(str(tmp_path / "missing"), key="DATASETS.VAL")
    (tmp_path / "list.txt").write_text("# nothing\n")
    with pytest.raises(DataError, match=r"file list .*list.txt names no images"):
        open_source(str(tmp_path / "list.txt"))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")  # the reader is carafe_engine's (tested there)
    with pytest.raises(DatasetError, match=r"cannot read image .*broken.jpg"):
        open_source(str(tmp_path)).load(0)


def test_masks_read_back_and_bad_masks_are_named(tmp_path):
    mask = seeded_mask(16, 24, 0, 0)
    write_mask(tmp_path / "m.png", mask)
    assert np.array_equal(read_mask(tmp_path / "m.png", (16, 24)), mask)
    Image.fromarray(mask.astype(np.uint8)).save(tmp_path / "zero_one.png")  # 0/1 files are read too
    assert np.array_equal(read_mask(tmp_path / "zero_one.png"), mask)
    with pytest.raises(ImageReadError, match=r"mask .*m.png is 16x24 \(HxW\); expected 32x32"):
        read_mask(tmp_path / "m.png", (32, 32))
    grey = (mask * 255).astype(np.uint8)
    grey[0, 0] = 128
    Image.fromarray(grey).save(tmp_path / "grey.png")
    with pytest.raises(ImageReadError, match=r"mask .*grey.png is not binary: it has the values 0, 128, 255"):
        read_mask(tmp_path / "grey.png")
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[0, 0] = (255, 0, 0)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(ImageReadError, match=r"mask .*colour.png is a colour image"):
        read_mask(tmp_path / "colour.png")


def test_training_views_are_a_function_of_the_sample(photo_folder):
    source = open_source(str(photo_folder))
    views = TrainingViews(source, 32, seed=3, max_scale=1.5)
    assert len(views) == 3
    a, b = views[Sample(1, 17, 4)], TrainingViews(source, 32, seed=3, max_scale=1.5)[Sample(1, 17, 0)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert a["image"].shape == (3, 32, 32) and a["mask"].shape == (1, 32, 32)
    assert -1 <= a["image"].min() and a["image"].max() <= 1
    assert not torch.equal(views[Sample(1, 17, 4)]["mask"], views[Sample(1, 18, 4)]["mask"])
    assert not torch.equal(views[Sample(1, 17, 4)]["image"], views[Sample(2, 17, 4)]["image"])
    # the engine's sampler: each epoch visits every image once (a batch of 3 uses them all), in a seeded order
    batches = [[s.index for s in batch] for batch in TrainingSampler(len(views), 3, seed=3, max_iter=2)]
    assert [sorted(batch) for batch in batches] == [[0, 1, 2], [0, 1, 2]]


def test_data_errors_are_the_engines_user_errors():
    assert issubclass(DataError, DatasetError) and issubclass(ImageReadError, DatasetError)


def test_validation_pairs_are_fixed(tmp_path, photo_folder):
    source = open_source(str(photo_folder), key="DATASETS.VAL")
    pairs = ValidationPairs(source, 32, mask_seed=9, masks_per_image=2)
    assert len(pairs) == 6
    # without a mask folder, mask p is entry p of the coverage-binned set of the seed: bins in turn
    candidates = binned_candidates(32, 9, 6)
    assert torch.equal(pairs[3]["mask"][0], torch.from_numpy(seeded_mask(32, 32, 9, candidates[3])))
    assert [mask_bin(pairs.mask(p)) for p in range(6)] == [0, 1, 2, 3, 4, 0]
    assert torch.equal(pairs[2]["image"], pairs[3]["image"]) and not torch.equal(pairs[2]["image"], pairs[4]["image"])
    assert len(ValidationPairs(source, 32, 9, max_images=2)) == 2
    # a mask folder (carafe-inpaint-make-data): mask p is file p, cycling
    for i in range(2):
        write_mask(tmp_path / "masks" / f"mask_{i:05d}.png", seeded_mask(32, 32, 1, i))
    from_files = ValidationPairs(source, 32, 0, mask_dir=tmp_path / "masks")
    assert torch.equal(from_files[2]["mask"][0], torch.from_numpy(seeded_mask(32, 32, 1, 0)))
    write_mask(tmp_path / "masks" / "mask_00002.png", seeded_mask(16, 16, 1, 2))
    with pytest.raises(ImageReadError, match=r"mask_00002.png is 16x16 \(HxW\); expected 32x32"):
        ValidationPairs(source, 32, 0, mask_dir=tmp_path / "masks")[2]
    (tmp_path / "no_masks").mkdir()
    with pytest.raises(DataError, match=r"DATASETS.VAL_MASKS: the folder .*no_masks holds no .png masks"):
        ValidationPairs(source, 32, 0, mask_dir=tmp_path / "no_masks")


def test_figure4_rows_show_one_pair_per_coverage_bin(photo_folder):
    pairs = ValidationPairs(open_source(str(photo_folder)), 32, mask_seed=3, masks_per_image=5)
    rows = pairs_per_bin(pairs)
    assert [label.split(" bin")[0] for _, label in rows] == ["10-20%", "20-30%", "30-40%", "40-50%", "50-60%"]
    for b, (pair, label) in enumerate(rows):
        mask = pairs.mask(pair)
        assert mask_bin(mask) == b and label.endswith(f"{100 * mask.mean():.1f}% hole")
        assert pair // 5 == b % 3  # bin b from photograph b % 3: the rows show different photographs
