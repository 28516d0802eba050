"""Data sources (folders, Places365 file lists, the embedded photographs), the seeded training stream, the fixed
validation pairs, and the errors for bad images and masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from carafe_inpaint import DataError, ImageReadError, StreamBatches, TrainingStream, ValidationPairs, open_source, \
    read_image, read_mask, seeded_mask
from carafe_inpaint.embedded import TRAIN_PHOTOS, VAL_PHOTOS, photographs
from carafe_inpaint.images import write_mask


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
    assert open_source(str(photo_folder / "val.txt"), key="DATA.VAL").load(0).shape == (48, 40, 3)


def test_bad_sources_name_the_key_and_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"DATA.TRAIN: the folder .*empty holds no images"):
        open_source(str(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"DATA.VAL: '.*missing' is neither 'embedded' nor an existing folder"):
        open_source(str(tmp_path / "missing"), key="DATA.VAL")
    (tmp_path / "list.txt").write_text("# nothing\n")
    with pytest.raises(DataError, match=r"file list .*list.txt names no images"):
        open_source(str(tmp_path / "list.txt"))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    with pytest.raises(ImageReadError, match=r"cannot read image .*broken.jpg"):
        read_image(tmp_path / "broken.jpg")
    with pytest.raises(ImageReadError, match=r"image not found: .*nope.png"):
        read_image(tmp_path / "nope.png")


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


def test_training_stream_is_a_function_of_position(photo_folder):
    source = open_source(str(photo_folder))
    stream = TrainingStream(source, 32, seed=3, max_scale=1.5)
    a, b = stream[17], TrainingStream(source, 32, seed=3, max_scale=1.5)[17]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert a["image"].shape == (3, 32, 32) and a["mask"].shape == (1, 32, 32)
    assert -1 <= a["image"].min() and a["image"].max() <= 1
    assert not torch.equal(stream[17]["mask"], stream[18]["mask"])
    # each pass over the data visits every image once, in a seeded order
    assert sorted(stream.image_index(p) for p in range(3)) == [0, 1, 2]
    assert sorted(stream.image_index(p) for p in range(3, 6)) == [0, 1, 2]
    assert TrainingStream(source, 32, seed=4).image_index(0) is not None


def test_stream_batches_split_the_global_batch_between_processes():
    per_rank = [list(StreamBatches(5, 7, 8, rank, 2)) for rank in range(2)]
    assert per_rank[0] == [[40, 41, 42, 43], [48, 49, 50, 51]]
    assert per_rank[1] == [[44, 45, 46, 47], [52, 53, 54, 55]]
    assert list(StreamBatches(0, 2, 4, 0, 1)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(DataError, match=r"SOLVER.IMS_PER_BATCH \(6\) must be divisible by the number of processes"):
        StreamBatches(0, 1, 6, 0, 4)


def test_validation_pairs_are_fixed(tmp_path, photo_folder):
    source = open_source(str(photo_folder), key="DATA.VAL")
    pairs = ValidationPairs(source, 32, mask_seed=9, masks_per_image=2)
    assert len(pairs) == 6
    assert torch.equal(pairs[3]["mask"][0], torch.from_numpy(seeded_mask(32, 32, 9, 3)))
    assert torch.equal(pairs[2]["image"], pairs[3]["image"]) and not torch.equal(pairs[2]["image"], pairs[4]["image"])
    assert len(ValidationPairs(source, 32, 9, max_images=2)) == 2
    # a mask folder (carafe-inpaint-masks): mask p is file p, cycling
    for i in range(2):
        write_mask(tmp_path / "masks" / f"mask_{i:05d}.png", seeded_mask(32, 32, 1, i))
    from_files = ValidationPairs(source, 32, 0, mask_dir=tmp_path / "masks")
    assert torch.equal(from_files[2]["mask"][0], torch.from_numpy(seeded_mask(32, 32, 1, 0)))
    write_mask(tmp_path / "masks" / "mask_00002.png", seeded_mask(16, 16, 1, 2))
    with pytest.raises(ImageReadError, match=r"mask_00002.png is 16x16 \(HxW\); expected 32x32"):
        ValidationPairs(source, 32, 0, mask_dir=tmp_path / "masks")[2]
    (tmp_path / "no_masks").mkdir()
    with pytest.raises(DataError, match=r"DATA.VAL_MASKS: the folder .*no_masks holds no .png masks"):
        ValidationPairs(source, 32, 0, mask_dir=tmp_path / "no_masks")
