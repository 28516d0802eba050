"""Data: the synthetic dataset's layout, the training pipeline (sizes, flips, padding never a class), the sample
batches (one orientation and one size per batch; the engine's sampler tests the stream itself), and every kind of bad input with an error naming the file or
key."""

from __future__ import annotations

import shutil
from functools import partial

import numpy as np
import pytest
import torch
from carafe_engine import ConfigError, TrainingSampler
from PIL import Image
from torch.utils.data import DataLoader

from carafe_seg.config import CONFIG_DIR, load_seg_config
from carafe_seg.data.ade20k import DatasetError, class_names, image_size, list_samples, read_annotation, read_sample
from carafe_seg.data.datasets import EvalSet, TrainSet, collate_train
from carafe_seg.data.synthetic import CLASSES, make_synthetic_ade20k
from carafe_seg.data.transforms import IGNORE_INDEX, pad_batch, scaled_size, subsample_targets

from conftest import tiny_config


def test_synthetic_dataset_has_the_ade20k_layout(small_dataset):
    for split, count in (("training", 32), ("validation", 8)):
        images = sorted((small_dataset / "images" / split).glob("*.jpg"))
        annotations = sorted((small_dataset / "annotations" / split).glob("*.png"))
        assert len(images) == len(annotations) == count
        assert [p.stem for p in images] == [p.stem for p in annotations]
    samples = list_samples(small_dataset, "training")
    values = set()
    for sample in samples:
        image, label = read_sample(sample, 150)
        assert image.dtype == np.uint8 and image.shape[2] == 3 and label.dtype == np.uint8
        values |= set(np.unique(label).tolist())
    assert values <= set(range(len(CLASSES) + 1)) and {1, 2, 3, 4, 5} <= values
    assert class_names(small_dataset, 150)[:5] == list(CLASSES)
    assert class_names(small_dataset, 150)[5] == "class_6"


def test_scaled_size_follows_shorter_edge_and_longer_edge_cap():
    assert scaled_size(480, 640, 450, 1200) == (450, 600)
    assert scaled_size(640, 480, 300, 1200) == (400, 300)
    assert scaled_size(300, 2000, 600, 1200) == (180, 1200)  # the longer edge caps the scale


def training_loader(cfg, root, iterations=4):
    """The training data as SegmentationTrainer feeds it: orientation groups, one batch per iteration."""
    samples = list_samples(root, "training")
    portrait = [int(h > w) for h, w in (image_size(s.image) for s in samples)]
    sampler = TrainingSampler(len(samples), cfg.SOLVER.IMS_PER_BATCH, cfg.SEED, iterations, group_ids=portrait)
    dataset = TrainSet(samples, cfg)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=partial(collate_train, divisor=32)), portrait


def test_training_batches_are_padded_and_padding_is_ignored(small_dataset, tmp_path):
    cfg = tiny_config("tiny.yaml", small_dataset, tmp_path)
    loader, portrait = training_loader(cfg, small_dataset)
    for batch_keys, (images, targets) in zip(loader.batch_sampler, loader):  # the loader replays the sampler
        assert images.shape[0] == targets.shape[0] == cfg.SOLVER.IMS_PER_BATCH
        assert images.shape[2] % 32 == 0 and images.shape[3] % 32 == 0 and targets.shape == images[:, 0].shape
        assert targets.min() >= IGNORE_INDEX and targets.max() < 150
        assert len({portrait[key.index] for key in batch_keys}) == 1  # one orientation per batch
        augmentations = [loader.dataset.augmentation(key) for key in batch_keys]
        short_sizes = {short for short, _ in augmentations}
        assert len(short_sizes) == 1 and short_sizes <= set(cfg.INPUT.TRAIN_SHORT_SIZES)
        for key, (short, _), image, target in zip(batch_keys, augmentations, images, targets):
            raw_label = read_annotation(loader.dataset.samples[key.index].annotation, 150)
            height, width = scaled_size(*raw_label.shape, short, cfg.INPUT.TRAIN_MAX_SIZE)
            # outside the resized image: zero image (the mean colour) and ignored labels
            assert (target[height:] == IGNORE_INDEX).all() and (target[:, width:] == IGNORE_INDEX).all()
            assert (image[:, height:] == 0).all() and (image[:, :, width:] == 0).all()
            inside = target[:height, :width]
            # label 0 ('other') becomes ignored; classes k become k - 1
            assert set((inside + 1).unique().tolist()) <= set(np.unique(raw_label).tolist())


def test_augmentation_draws_sizes_per_batch_and_flips_per_image(small_dataset, tmp_path):
    cfg = tiny_config("tiny.yaml", small_dataset, tmp_path)
    loader, _ = training_loader(cfg, small_dataset, iterations=40)
    draws = [[loader.dataset.augmentation(key) for key in batch] for batch in loader.batch_sampler]
    assert len({batch[0][0] for batch in draws}) > 1  # batches get different sizes
    assert {flip for batch in draws for _, flip in batch} == {True, False}


def test_flip_moves_image_and_label_together(small_dataset, tmp_path):
    cfg = tiny_config("tiny.yaml", small_dataset, tmp_path, "INPUT.TRAIN_MAX_SIZE", 10000)
    dataset = TrainSet(list_samples(small_dataset, "training"), cfg)
    label = read_annotation(dataset.samples[3].annotation, 150)
    short = min(label.shape)  # no resizing, so the flip must be exact
    image, target = dataset.item(3, short, False)
    flipped_image, flipped_target = dataset.item(3, short, True)
    assert torch.equal(flipped_image, image.flip(-1)) and torch.equal(flipped_target, target.flip(-1))
    assert not torch.equal(flipped_target, target)


def test_eval_items_keep_labels_at_the_original_size(small_dataset, tmp_path):
    cfg = tiny_config("tiny.yaml", small_dataset, tmp_path)
    dataset = EvalSet(list_samples(small_dataset, "validation"), cfg)
    for i in range(len(dataset)):
        image, target, name = dataset[i]
        raw = read_annotation(dataset.samples[i].annotation, 150)
        assert target.shape == raw.shape and name == dataset.samples[i].image.stem
        assert tuple(image.shape[1:]) == scaled_size(*raw.shape, cfg.INPUT.TEST_SHORT_SIZE, cfg.INPUT.TEST_MAX_SIZE)


def test_pad_batch_and_subsample_targets():
    images = [torch.ones(3, 5, 7), torch.ones(3, 9, 4)]
    targets = [torch.zeros(5, 7, dtype=torch.int64), torch.full((9, 4), 2, dtype=torch.int64)]
    batch_images, batch_targets = pad_batch(images, targets, 8)
    assert batch_images.shape == (2, 3, 16, 8) and batch_targets.shape == (2, 16, 8)
    assert batch_images[0, :, :5, :7].eq(1).all() and batch_images[0, :, 5:].eq(0).all()
    assert batch_targets[1, :9, :4].eq(2).all() and batch_targets[1, 9:].eq(IGNORE_INDEX).all()
    grid = torch.arange(64).view(1, 8, 8)
    assert subsample_targets(grid, 4).tolist() == [[[18, 22], [50, 54]]]  # the centre of each 4x4 cell
    assert subsample_targets(grid, 1) is grid


# -- bad input: each error names the file, folder or key ------------------------------------------------------


@pytest.fixture
def broken_copy(small_dataset, tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    shutil.copytree(small_dataset, root)
    return root


def test_missing_folders_are_named(tmp_path, broken_copy):
    with pytest.raises(DatasetError, match="DATASETS.ROOT is not set"):
        list_samples("", "training")
    with pytest.raises(DatasetError, match=f"dataset folder not found: {tmp_path / 'nowhere'}"):
        list_samples(tmp_path / "nowhere", "training")
    shutil.rmtree(broken_copy / "annotations" / "validation")
    with pytest.raises(DatasetError, match=f"{broken_copy / 'annotations' / 'validation'} not found"):
        list_samples(broken_copy, "validation")
    with pytest.raises(DatasetError, match="images/testing not found"):
        list_samples(broken_copy, "testing")


def test_unpaired_files_are_named(broken_copy):
    (broken_copy / "annotations" / "training" / "synth_train_00000004.png").unlink()
    with pytest.raises(DatasetError, match="1 images .* no annotation .*synth_train_00000004.jpg"):
        list_samples(broken_copy, "training")
    (broken_copy / "images" / "validation" / "synth_val_00000002.jpg").unlink()
    with pytest.raises(DatasetError, match="1 annotations .* no image .*synth_val_00000002.png"):
        list_samples(broken_copy, "validation")


def test_size_mismatch_names_both_files(broken_copy):
    annotation = broken_copy / "annotations" / "training" / "synth_train_00000002.png"
    Image.fromarray(np.ones((10, 12), np.uint8)).save(annotation)
    sample = list_samples(broken_copy, "training")[1]
    with pytest.raises(DatasetError, match=r"synth_train_00000002.jpg is \d+x\d+ but its annotation .*"
                                           r"synth_train_00000002.png is 12x10"):
        read_sample(sample, 150)


def test_out_of_range_and_colour_labels_are_named(broken_copy):
    annotation = broken_copy / "annotations" / "training" / "synth_train_00000003.png"
    label = np.array(Image.open(annotation))
    label[0, 0] = 151
    Image.fromarray(label).save(annotation)
    with pytest.raises(DatasetError, match="synth_train_00000003.png: label value 151 is out of range"):
        read_annotation(annotation, 150)
    # a small NUM_CLASSES makes the generated labels themselves out of range, also inside the training pipeline
    cfg = load_seg_config("tiny.yaml", ["DATASETS.ROOT", str(broken_copy), "DATASETS.NUM_CLASSES", "3"])
    dataset = TrainSet(list_samples(broken_copy, "training"), cfg)
    with pytest.raises(DatasetError, match=r"synth_train_00000001.png: label value \d is out of range: expected 0 "
                                           r"\(ignored\) .. 3"):
        dataset.item(0, 64, False)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(annotation)
    with pytest.raises(DatasetError, match="synth_train_00000003.png: expected a single-channel PNG"):
        read_annotation(annotation, 150)


def test_unreadable_image_is_named(broken_copy):
    image = broken_copy / "images" / "training" / "synth_train_00000005.jpg"
    image.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="cannot read image .*synth_train_00000005.jpg"):
        read_sample(list_samples(broken_copy, "training")[4], 150)


def test_unknown_config_keys_and_bad_values_are_named(tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text(f"_BASE_: {CONFIG_DIR / 'tiny.yaml'}" +
                      "\nMODEL:\n  UPSAMPLERS:\n    FPN: carafe\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: unknown config key 'MODEL.UPSAMPLERS'"):
        load_seg_config(config)
    with pytest.raises(ConfigError, match=r"unknown config key 'SOLVER.LEARNING_RATE'"):
        load_seg_config("tiny.yaml", ["SOLVER.LEARNING_RATE", "0.1"])
    with pytest.raises(ConfigError, match="MODEL.UPSAMPLER.FPN 'deconv' is not one of bilinear, carafe"):
        load_seg_config("tiny.yaml", ["MODEL.UPSAMPLER.FPN", "deconv"])
    with pytest.raises(ConfigError, match="INPUT.SIZE_DIVISIBILITY must be a positive multiple of 32"):
        load_seg_config("tiny.yaml", ["INPUT.SIZE_DIVISIBILITY", "16"])
    with pytest.raises(ConfigError, match="config file not found: no_such.yaml .*shipped configs: tiny.yaml"):
        load_seg_config("no_such.yaml")


def test_generator_is_deterministic(tmp_path):
    first = make_synthetic_ade20k(tmp_path / "a", train=3, val=1, seed=5)
    second = make_synthetic_ade20k(tmp_path / "b", train=3, val=1, seed=5)
    for path in first.rglob("*.png"):
        assert np.array_equal(np.array(Image.open(path)), np.array(Image.open(second / path.relative_to(first))))
