"""The demos' shared parts: training commands side by side, their logs and failures, the training time of a run,
Markdown tables and summary files; and the image reader and --input expander every predict command uses."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from carafe_engine import DatasetError, append_metrics, list_images, read_image
from carafe_engine.demo import markdown_table, train_side_by_side, training_seconds, write_summary


def test_side_by_side_runs_each_command_and_keeps_its_output(tmp_path, capsys):
    train_side_by_side("calendar", {"a": ["2026"], "b": ["1999"]}, tmp_path / "logs")
    assert "2026" in (tmp_path / "logs" / "a.out").read_text() and "1999" in (tmp_path / "logs" / "b.out").read_text()
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith("[a] ") and "2026" in line for line in printed)
    assert any(line.startswith("[b] ") and "1999" in line for line in printed)


def test_side_by_side_names_the_log_of_a_failed_run(tmp_path):
    with pytest.raises(SystemExit, match=r"training failed: \{'bad': 2\}; see .*bad.out"):
        train_side_by_side("calendar", {"good": ["2026"], "bad": ["not-a-year"]}, tmp_path)


def test_training_seconds_adds_up_the_logged_periods(tmp_path):
    for record in ({"iteration": 10, "loss": 1.0, "seconds_per_iter": 0.5}, {"iteration": 10, "psnr": 20.0},
                   {"iteration": 30, "loss": 0.5, "seconds_per_iter": 0.25}):
        append_metrics(tmp_path, record)
    assert training_seconds(tmp_path) == pytest.approx(10 * 0.5 + 20 * 0.25)


def test_markdown_table_and_summary_files(tmp_path):
    assert markdown_table(["model", "AP"], [["CARAFE", 39.3], ["baseline", "38.2"]]) == [
        "| model | AP |", "|---|---|", "| CARAFE | 39.3 |", "| baseline | 38.2 |"]
    write_summary(tmp_path, {"AP": 39.3}, ["# title", "text"])
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"AP": 39.3}
    assert (tmp_path / "summary.md").read_text() == "# title\ntext\n"


def test_read_image_gives_rgb_and_names_bad_files(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    image = read_image(tmp_path / "grey.png")
    assert image.shape == (3, 4, 3) and image.dtype == np.uint8 and (image[..., 1] == grey).all()
    image[0, 0] = 0  # writable: torch.from_numpy takes it
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(DatasetError, match=r"cannot read image .*broken.jpg"):
        read_image(tmp_path / "broken.jpg")
    with pytest.raises(DatasetError, match=r"image not found: .*nope.png"):
        read_image(tmp_path / "nope.png")


def test_list_images_expands_folders_and_names_the_flag(tmp_path):
    (tmp_path / "photos").mkdir()
    for name in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / "photos" / name).write_bytes(b"")
    (tmp_path / "single.png").write_bytes(b"")
    assert list_images([tmp_path / "single.png", tmp_path / "photos"]) == [
        tmp_path / "single.png", tmp_path / "photos" / "a.JPG", tmp_path / "photos" / "b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"--input .*empty: the folder holds no images"):
        list_images([tmp_path / "empty"])
    with pytest.raises(DatasetError, match=r"--images .*gone: no such file or folder"):
        list_images([tmp_path / "gone"], flag="--images")
