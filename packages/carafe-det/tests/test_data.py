"""The generated shapes dataset, the checks of COCO folders (each bad input names its file or key), the
torchvision engine's dataset and its training stream (the engine's sampler, a flip drawn per sample)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from carafe_engine import ConfigError, TrainingSampler
from pycocotools import mask as mask_util

from carafe_det.data import DatasetError, load_annotations, locate_split
from carafe_engine import read_image
from carafe_det.cli.make_data import main as shapes_main
from carafe_det.data.shapes import CLASSES, write_split
from carafe_det.torchvision_engine.data import CocoDetectionDataset


def test_generated_annotations_match_their_masks(shapes_root):
    data = load_annotations(shapes_root / "annotations" / "instances_train.json")
    assert [c["name"] for c in data["categories"]] == list(CLASSES)
    assert len(data["images"]) == 48 and len(data["annotations"]) >= 48
    for annotation in data["annotations"][:40]:
        rle = mask_util.frPyObjects(annotation["segmentation"], 96, 96)
        mask = mask_util.decode(mask_util.merge(rle))
        rows, cols = np.nonzero(mask)
        x, y, w, h = annotation["bbox"]
        assert (cols.min(), rows.min(), cols.max() + 1 - x, rows.max() + 1 - y) == (x, y, w, h)
        assert int(mask.sum()) == annotation["area"]
    image = read_image(shapes_root / "train" / data["images"][0]["file_name"])
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8 and image.std() > 10  # textured


def test_generator_is_deterministic_and_has_a_command_line(tmp_path, capsys):
    write_split(tmp_path / "a", "train", 3, 64, seed=5)
    write_split(tmp_path / "b", "train", 3, 64, seed=5)
    for name in ("annotations/instances_train.json", "train/000002.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert shapes_main(["--output", str(tmp_path / "c"), "--train", "2", "--val", "1", "--size", "64"]) == 0
    assert len(list((tmp_path / "c" / "val").glob("*.png"))) == 1
    assert "wrote" in capsys.readouterr().out


def test_missing_dataset_folder_names_it(tmp_path):
    with pytest.raises(DatasetError, match=f"dataset folder not found: {tmp_path / 'nowhere'}"):
        locate_split(tmp_path / "nowhere", "train")


def test_missing_annotation_file_names_it_and_lists_what_is_there(shapes_root):
    with pytest.raises(DatasetError) as error:
        locate_split(shapes_root, "test2017")
    message = str(error.value)
    assert str(shapes_root / "annotations" / "instances_test2017.json") in message
    assert "instances_train.json" in message and "instances_val.json" in message


def test_missing_image_folder_names_it(tmp_path, shapes_root):
    root = tmp_path / "coco"
    shutil.copytree(shapes_root / "annotations", root / "annotations")
    with pytest.raises(DatasetError, match=f"image folder not found: {root / 'train'}"):
        locate_split(root, "train")


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "holds an object with images, annotations and categories; got list"),
    ('{"images": [], "annotations": []}', "'categories' must be a list"),
    ('{"images": [], "annotations": [], "categories": [{"id": 1}]}', "categories[0] has no 'name'"),
    ('{"images": [{"id": 1, "file_name": "a.png", "height": 4}], "annotations": [], '
     '"categories": [{"id": 1, "name": "a"}]}', "images[0] has no 'width'"),
    ('{"images": [{"id": 1, "file_name": "a.png", "height": 4, "width": 4}], "categories": [{"id": 1, "name": "a"}],'
     ' "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2]}]}',
     "annotations[0].bbox must be [x, y, width, height], got [0, 0, 2]"),
    ('{"images": [{"id": 1, "file_name": "a.png", "height": 4, "width": 4}], "categories": [{"id": 1, "name": "a"}],'
     ' "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 2, 2]}]}',
     "annotations[0].category_id 7 is not in 'categories'"),
])
def test_malformed_annotation_file_names_the_file_and_entry(tmp_path, content, message):
    path = tmp_path / "instances_train.json"
    path.write_text(content)
    with pytest.raises(DatasetError) as error:
        load_annotations(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_image_that_cannot_be_decoded_names_the_file(tmp_path, shapes_root):
    root = tmp_path / "coco"
    shutil.copytree(shapes_root, root)
    data = json.loads((root / "annotations" / "instances_train.json").read_text())
    broken = root / "train" / data["images"][0]["file_name"]
    broken.write_bytes(b"\x89PNG truncated")
    dataset = CocoDetectionDataset(root, "train", with_masks=True)
    with pytest.raises(DatasetError, match=f"cannot read image {broken}"):
        dataset[0]


def test_dataset_targets_and_flip(shapes_root):
    dataset = CocoDetectionDataset(shapes_root, "train", with_masks=True, filter_empty=True)
    assert dataset.class_names == list(CLASSES) and len(dataset) == 48
    image, target = dataset[3]
    flipped, flipped_target = dataset.load(3, flip=True)
    assert image.shape == (3, 96, 96) and 0 <= image.min() and image.max() <= 1
    boxes, masks = target["boxes"], target["masks"]
    assert masks.shape == (len(boxes), 96, 96) and set(target["labels"].tolist()) <= {1, 2, 3}
    for box, mask in zip(boxes, masks):  # each box is its mask's extent
        rows, cols = torch.nonzero(mask, as_tuple=True)
        assert [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1] == box.tolist()
    torch.testing.assert_close(flipped, image.flip(-1))
    torch.testing.assert_close(flipped_target["masks"], masks.flip(-1))
    torch.testing.assert_close(flipped_target["boxes"][:, [0, 2]], 96 - boxes[:, [2, 0]])


def stream(size: int, start_iter: int = 0, max_iter: int = 15, rank: int = 0, world_size: int = 1):
    return list(TrainingSampler(size, 4, seed=3, max_iter=max_iter, start_iter=start_iter, rank=rank,
                                world_size=world_size))


def is_flipped(dataset: CocoDetectionDataset, sample) -> bool:
    image, plain = dataset[sample][0], dataset.load(sample.index)[0]
    assert torch.equal(image, plain) or torch.equal(image, plain.flip(-1))
    return not torch.equal(image, plain)


def test_training_stream_is_a_function_of_the_iteration_with_a_flip_per_sample(shapes_root):
    dataset = CocoDetectionDataset(shapes_root, "train", with_masks=False, filter_empty=True, hflip_prob=0.5, seed=3)
    full = stream(len(dataset))
    assert len(full) == 15 and all(len(b) == 4 for b in full)
    epoch0 = [sample.index for batch in full[:12] for sample in batch]
    assert sorted(epoch0) == list(range(48))  # one epoch = every image once
    assert [sample.index for batch in full[12:] for sample in batch] != epoch0[:12]  # reshuffled per epoch
    assert stream(len(dataset), start_iter=7) == full[7:]  # a resumed run continues the stream
    assert dataset.aspect_ratio_groups() == [0] * 48  # square images: landscape (DATALOADER.ASPECT_RATIO_GROUPING)
    samples = [sample for batch in full[:3] for sample in batch]
    flips = [is_flipped(dataset, sample) for sample in samples]
    assert 0 < sum(flips) < len(flips)
    assert flips == [is_flipped(dataset, sample) for sample in samples]  # drawn from the sample, not a stream
    assert not any(is_flipped(CocoDetectionDataset(shapes_root, "train", with_masks=False, filter_empty=True), s)
                   for s in samples[:4])  # hflip_prob 0 (evaluation): never


def test_training_stream_splits_each_global_batch_between_processes():
    single, rank0, rank1 = stream(16, max_iter=4), stream(16, max_iter=4, rank=0, world_size=2), stream(
        16, max_iter=4, rank=1, world_size=2)
    for whole, a, b in zip(single, rank0, rank1):  # the same samples (positions, so flips) in either count
        assert len(a) == len(b) == 2 and a + b == whole


@pytest.mark.parametrize("args,message", [((16, 3, 3, 1, 0, 0, 2), "IMS_PER_BATCH (3) must be divisible by the "
                                                                   "number of processes (2)"),
                                          ((2, 4, 0, 1), "too few images for one batch of SOLVER.IMS_PER_BATCH 4")])
def test_training_stream_refuses_impossible_settings(args, message):
    with pytest.raises(ConfigError) as error:
        TrainingSampler(*args)
    assert message in str(error.value)
