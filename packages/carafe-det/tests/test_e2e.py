"""The torchvision end-to-end path on generated data, through the commands' main functions (and, for the run that
is killed, a separate process): train, checkpoint, kill and resume (to exactly the weights of an uninterrupted
run), evaluate, predict, visualize; and bad input at the command line."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from carafe_engine import last_checkpoint

from carafe_det.cli.predict import main as predict_main
from carafe_det.cli.train import main as train_main
from carafe_det.cli.visualize import main as visualize_main
from conftest import PYTHON, SUBPROCESS_ENV, tiny_opts

TINY = "torchvision/tiny_shapes_mask_rcnn_carafe.yaml"


def command(module: str, *args) -> list[str]:
    return [PYTHON, "-m", module, *map(str, args)]


def train(*args) -> int:
    return train_main(["--engine", "torchvision", "--config-file", TINY, *map(str, args)])


def predict(*args) -> int:
    return predict_main([str(a) for a in args])


def weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["model"]


@pytest.fixture(scope="module")
def trained(shapes_root, tmp_path_factory) -> Path:
    """An uninterrupted 8-iteration run with a checkpoint every 2 iterations."""
    output = tmp_path_factory.mktemp("uninterrupted")
    assert train(*tiny_opts(shapes_root, output, 8), "SOLVER.CHECKPOINT_PERIOD", 2) == 0
    return output


def test_training_writes_checkpoints_metrics_and_an_evaluation(trained):
    assert sorted(p.name for p in trained.glob("model_*.pth")) == [
        "model_0000002.pth", "model_0000004.pth", "model_0000006.pth", "model_final.pth"]
    assert last_checkpoint(trained) == trained / "model_final.pth"
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in records if "loss" in r]
    assert [r["iteration"] for r in losses] == [2, 4, 6, 8]
    assert all({"loss_mask", "loss_classifier", "lr", "seconds_per_iter"} <= set(r) for r in losses)
    evaluation = json.loads((trained / "eval.json").read_text())
    assert evaluation["iteration"] == 8 and evaluation["images"] == 12
    assert set(evaluation["bbox"]) == set(evaluation["segm"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    log = (trained / "log.txt").read_text()
    assert "ETA" in log and "iter 8/8" in log and "segm" in log
    assert "UPSAMPLE: carafe" in (trained / "config.yaml").read_text()


def test_a_killed_run_resumes_to_the_uninterrupted_weights(trained, shapes_root, tmp_path):
    output = tmp_path / "killed"
    args = command("carafe_det.cli.train", "--engine", "torchvision", "--config-file", TINY,
                   *tiny_opts(shapes_root, output, 8), "SOLVER.CHECKPOINT_PERIOD", 2)
    process = subprocess.Popen(args, env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while last_checkpoint(output) is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = last_checkpoint(output)
    assert killed_at is not None and killed_at.name != "model_final.pth", "the run ended before it could be killed"

    assert train("--resume", *tiny_opts(shapes_root, output, 8), "SOLVER.CHECKPOINT_PERIOD", 2) == 0
    iteration = int(killed_at.stem.split("_")[1])
    assert f"resumed from {killed_at} at iteration {iteration}" in (output / "log.txt").read_text()
    resumed, uninterrupted = weights(output / "model_final.pth"), weights(trained / "model_final.pth")
    assert resumed.keys() == uninterrupted.keys()
    for name in uninterrupted:  # same batches, same random proposal sampling: the same weights
        torch.testing.assert_close(resumed[name], uninterrupted[name], rtol=1e-5, atol=1e-6, msg=name)


def test_training_into_another_runs_folder_needs_resume(trained, shapes_root, capsys):
    before = sorted(p.name for p in trained.iterdir())
    assert train(*tiny_opts(shapes_root, trained, 8)) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "holds the checkpoints of an earlier run" in error and "--resume" in error
    assert sorted(p.name for p in trained.iterdir()) == before


def test_resume_when_the_last_checkpoint_is_gone(trained, shapes_root, tmp_path, capsys):
    """last_checkpoint names a deleted file: the run resumes from the newest checkpoint that is there."""
    output = tmp_path / "copy"
    shutil.copytree(trained, output)
    (output / "model_final.pth").unlink()
    assert train("--resume", *tiny_opts(shapes_root, output, 8), "SOLVER.CHECKPOINT_PERIOD", 2) == 0
    log = (output / "log.txt").read_text()
    assert "names model_final.pth, which is missing" in log and "at iteration 6" in log
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    logged = [r["iteration"] for r in records if "loss" in r]
    assert logged == sorted(set(logged)) and logged[-1] == 8  # the iterations after 6 logged once, by the resumed run


def test_eval_only_reproduces_the_training_runs_evaluation(trained, shapes_root, tmp_path):
    output = tmp_path / "eval"
    assert train("--eval-only", *tiny_opts(shapes_root, output, 8), "MODEL.WEIGHTS", trained / "model_final.pth") == 0
    after_training = json.loads((trained / "eval.json").read_text())
    evaluated = json.loads((output / "eval.json").read_text())
    assert evaluated["iteration"] == 8
    for kind in ("bbox", "segm"):
        assert evaluated[kind]["AP"] == pytest.approx(after_training[kind]["AP"], abs=1e-6)


def test_eval_only_resumes_the_output_directorys_last_checkpoint(trained, shapes_root, capsys):
    assert train("--eval-only", "--resume", *tiny_opts(shapes_root, trained, 8)) == 0
    assert f"evaluating {trained / 'model_final.pth'} (iteration 8)" in capsys.readouterr().out


def test_predict_draws_one_model_or_two_side_by_side(trained, shapes_root, tmp_path):
    images = [shapes_root / "val" / "000001.png", shapes_root / "val" / "000002.png"]
    assert predict("--weights", trained / "model_0000002.pth", trained / "model_final.pth",
                   "--titles", "early", "final", "--score-thresh", "0.0", "--input", *images,
                   "--output", tmp_path / "pairs") == 0
    for image in images:
        assert (tmp_path / "pairs" / image.name).stat().st_size > 5000
    records = json.loads((tmp_path / "pairs" / "predictions.json").read_text())
    assert [Path(r["image"]).name for r in records] == [i.name for i in images]
    assert set(records[0]["models"]) == {"early", "final"}
    detection = records[0]["models"]["final"][0]
    assert detection["class"] in {"circle", "triangle", "square"} and len(detection["box"]) == 4
    assert predict("--weights", trained / "model_final.pth", "--input", shapes_root / "val",
                   "--output", tmp_path / "single") == 0
    assert len(list((tmp_path / "single").glob("*.png"))) == 12


def test_visualize_draws_the_reassembly_of_chosen_locations(trained, shapes_root, tmp_path):
    output = tmp_path / "figure1.png"
    assert visualize_main(["--weights", str(trained / "model_final.pth"), "--input",
                           str(shapes_root / "val" / "000001.png"), "--points", "30,40", "60,20", "--output",
                           str(output)]) == 0
    assert output.stat().st_size > 5000


@pytest.mark.parametrize("override,message", [
    (("DATASETS.ROOT", "/nonexistent/coco"), "dataset folder not found: /nonexistent/coco"),
    (("DATASETS.TRAIN", "train2017"), "annotations/instances_train2017.json"),
    (("MODEL.FPN.UPSAMPLER", "carafe"), "unknown config key 'MODEL.FPN.UPSAMPLER'"),
    (("MODEL.ROI_HEADS.NUM_CLASSES", "80"), "MODEL.ROI_HEADS.NUM_CLASSES is 80 but"),
    (("SOLVER.IMS_PER_BATCH", "64"), "too few images for one batch of SOLVER.IMS_PER_BATCH 64"),
])
def test_bad_input_at_the_command_line_is_one_clear_line(shapes_root, tmp_path, override, message, capsys):
    assert train(*tiny_opts(shapes_root, tmp_path, 2), *override) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("carafe-det-train: error:") and message in stderr and len(stderr.splitlines()) <= 2


def test_an_invalid_choice_is_one_line_naming_the_key_and_the_choices(shapes_root, tmp_path, capsys):
    assert train(*tiny_opts(shapes_root, tmp_path, 2), "MODEL.FPN.UPSAMPLE", "bilinear") == 2
    (line,) = capsys.readouterr().err.splitlines()  # not a traceback from the model's constructor
    assert line.startswith("carafe-det-train: error:")
    assert "MODEL.FPN.UPSAMPLE 'bilinear' is not one of nearest, carafe" in line


def test_a_checkpoint_of_another_model_is_refused_at_the_command_line(trained, shapes_root, tmp_path, capsys):
    assert train_main(["--engine", "torchvision", "--eval-only", "--config-file",
                       "torchvision/tiny_shapes_mask_rcnn.yaml", *tiny_opts(shapes_root, tmp_path, 2),
                       "MODEL.WEIGHTS", str(trained / "model_final.pth")]) == 2
    assert f"{trained / 'model_final.pth'} holds weights of another model" in capsys.readouterr().err


def test_predict_names_an_image_it_cannot_decode_and_a_missing_input(trained, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    assert predict("--weights", trained / "model_final.pth", "--input", broken, "--output", tmp_path / "o") == 2
    assert f"carafe-det-predict: error: cannot read image {broken}" in capsys.readouterr().err
    assert predict("--weights", trained / "model_final.pth", "--input", tmp_path / "nope.png", "--output",
                   tmp_path / "o") == 2
    assert f"--input {tmp_path / 'nope.png'}: no such file or folder" in capsys.readouterr().err
