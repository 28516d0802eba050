"""End to end on generated data: train (checkpoints, metrics, log), resume after the process is killed, evaluate,
predict; and the trained tiny CARAFE model far above an untrained one."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from carafe_engine import load_checkpoint, save_checkpoint
from PIL import Image

from carafe_seg.config import load_seg_config
from carafe_seg.data.ade20k import list_samples
from carafe_seg.evaluation import evaluate
from carafe_seg.modeling import build_model
from carafe_seg.cli.predict import main as predict
from carafe_seg.cli.step_benchmark import main as step_benchmark
from carafe_seg.cli.train import main as train

from conftest import SUBPROCESS_ENV, tiny_args, tiny_config

# Measured on the 96/24-scene demo dataset (2-core CPU, one thread, about 30 s of training; README.md and the demo
# quote the same run): the tiny CARAFE model reaches 83.74% mIoU, the untrained one 0.00%.
TRAINED_AT_LEAST = 60.0
UNTRAINED_AT_MOST = 10.0


def test_tiny_carafe_model_learns_far_above_an_untrained_one(trained_tiny, demo_dataset, tmp_path):
    trained = json.loads((trained_tiny / "eval.json").read_text())
    cfg = tiny_config("tiny_carafe.yaml", demo_dataset, tmp_path)
    torch.manual_seed(cfg.SEED)
    untrained = evaluate(build_model(cfg), list_samples(demo_dataset, "validation"), cfg, torch.device("cpu"))
    assert trained["mIoU"] >= TRAINED_AT_LEAST, trained["mIoU"]
    assert untrained["mIoU"] <= UNTRAINED_AT_MOST, untrained["mIoU"]
    assert trained["pixel_accuracy"] > untrained["pixel_accuracy"] + 40


def test_training_writes_checkpoints_metrics_and_log(trained_tiny):
    names = sorted(p.name for p in trained_tiny.iterdir())
    for expected in ("config.yaml", "eval.json", "last_checkpoint", "log.txt", "metrics.jsonl",
                     "model_0000050.pth", "model_0000100.pth", "model_final.pth"):
        assert expected in names
    assert (trained_tiny / "last_checkpoint").read_text() == "model_final.pth"
    state = load_checkpoint(trained_tiny / "model_final.pth", kind="carafe-seg")
    assert state["iteration"] == 110 and state["config"]["MODEL"]["UPSAMPLER"]["FUSION"] == "carafe"
    assert load_seg_config(trained_tiny / "config.yaml").SOLVER.BASE_LR == 0.05  # config.yaml is a usable config
    log = (trained_tiny / "log.txt").read_text()
    assert "iter 110/110" in log and "ETA" in log and "evaluation at iteration 110" in log
    records = [json.loads(line) for line in (trained_tiny / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 11 and losses[-1] < losses[0] / 3
    evaluation = json.loads((trained_tiny / "eval.json").read_text())
    assert records[-1]["mIoU"] == evaluation["mIoU"]
    assert set(evaluation["per_class_IoU"]) >= {"background", "disc", "box", "stripes", "triangle"}


def test_eval_only_reproduces_the_final_evaluation(trained_tiny, demo_dataset, tmp_path, capsys):
    final = json.loads((trained_tiny / "eval.json").read_text())
    train(["--eval-only", *tiny_args("tiny_carafe.yaml", demo_dataset, tmp_path / "eval",
                                     "MODEL.WEIGHTS", trained_tiny / "model_final.pth")])
    again = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert again["mIoU"] == pytest.approx(final["mIoU"], abs=1e-9)
    assert again["per_class_IoU"] == pytest.approx(final["per_class_IoU"])
    capsys.readouterr()
    assert train(["--eval-only", *tiny_args("tiny_carafe.yaml", demo_dataset, tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.startswith("carafe-seg-train: error: --eval-only needs MODEL.WEIGHTS")
    assert train(["--eval-only", *tiny_args("tiny.yaml", demo_dataset, tmp_path / "mismatch",
                                            "MODEL.WEIGHTS", trained_tiny / "model_final.pth")]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1
    assert re.search("model_final.pth holds weights of another model .*'FPN': 'carafe'", error)
    # --resume without MODEL.WEIGHTS evaluates the last checkpoint of OUTPUT_DIR (a copy: the fixture is shared)
    copy = shutil.copytree(trained_tiny, tmp_path / "copy")
    (copy / "eval.json").unlink()
    train(["--eval-only", "--resume", *tiny_args("tiny_carafe.yaml", demo_dataset, copy)])
    assert json.loads((copy / "eval.json").read_text())["mIoU"] == pytest.approx(final["mIoU"], abs=1e-9)


def test_resume_after_the_process_is_killed_continues_exactly(small_dataset, tmp_path):
    opts = ("SOLVER.EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 16, "SOLVER.CHECKPOINT_PERIOD", 2, "SOLVER.IMS_PER_BATCH", 4)
    train(tiny_args("tiny_carafe.yaml", small_dataset, tmp_path / "uninterrupted", *opts))

    output = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "carafe_seg.cli.train",
                                *tiny_args("tiny_carafe.yaml", small_dataset, output, *opts)],
                               env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (output / "last_checkpoint").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, f"the run ended before it was killed: {process.stderr.read()}"
    killed_at = load_checkpoint(output / (output / "last_checkpoint").read_text())["iteration"]
    assert 2 <= killed_at < 16
    assert not (output / "model_final.pth").exists()

    train(["--resume", *tiny_args("tiny_carafe.yaml", small_dataset, output, *opts)])
    assert f"at iteration {killed_at}" in (output / "log.txt").read_text().split("resumed from")[1].splitlines()[0]
    resumed = load_checkpoint(output / "model_final.pth")
    reference = load_checkpoint(tmp_path / "uninterrupted" / "model_final.pth")
    assert resumed["iteration"] == reference["iteration"] == 16
    for name, value in reference["model"].items():  # the same data, order and optimizer state: the same weights
        torch.testing.assert_close(resumed["model"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    # resuming a finished run trains nothing more
    train(["--resume", *tiny_args("tiny_carafe.yaml", small_dataset, output, *opts)])
    assert "already trained to iteration 16 of 16" in (output / "log.txt").read_text()


def test_predict_tells_two_runs_final_checkpoints_apart(trained_tiny, demo_dataset, tmp_path):
    """out/a/model_final.pth and out/b/model_final.pth: two columns and two sets of files, each of its model."""
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
    shutil.copy(trained_tiny / "model_final.pth", tmp_path / "a" / "model_final.pth")
    shutil.copy(trained_tiny / "model_0000050.pth", tmp_path / "b" / "model_final.pth")
    image = sorted((demo_dataset / "images" / "validation").iterdir())[0]
    predict(["--weights", str(tmp_path / "a" / "model_final.pth"), str(tmp_path / "b" / "model_final.pth"),
             "--input", str(image), "--output", str(tmp_path / "out"), "--device", "cpu"])
    a = np.array(Image.open(tmp_path / "out" / f"{image.stem}_carafe_a_labels.png"))
    b = np.array(Image.open(tmp_path / "out" / f"{image.stem}_carafe_b_labels.png"))
    assert not np.array_equal(a, b)  # the 50-iteration model segments differently from the final one


def test_training_into_another_runs_folder_needs_resume(trained_tiny, demo_dataset, capsys):
    before = sorted(p.name for p in trained_tiny.iterdir())
    with pytest.raises(SystemExit) as exit_info:
        train(tiny_args("tiny_carafe.yaml", demo_dataset, trained_tiny))
    error = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(error.splitlines()) == 1
    assert "holds the checkpoints of an earlier run" in error and "--resume" in error
    assert sorted(p.name for p in trained_tiny.iterdir()) == before


def test_resume_when_the_last_checkpoint_is_gone(trained_tiny, demo_dataset, tmp_path):
    """last_checkpoint names a deleted file: the run resumes from the newest checkpoint that is there, and logs
    the iterations after it once."""
    copy = shutil.copytree(trained_tiny, tmp_path / "copy")
    (copy / "model_final.pth").unlink()
    train(["--resume", *tiny_args("tiny_carafe.yaml", demo_dataset, copy)])
    log = (copy / "log.txt").read_text()
    assert "names model_final.pth, which is missing" in log and "at iteration 100" in log.split("resumed from")[-1]
    records = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    logged = [r["iteration"] for r in records if "loss" in r]
    assert logged == sorted(set(logged)) and logged[-1] == 110
    assert load_checkpoint(copy / "model_final.pth")["iteration"] == 110


def test_predict_writes_segmentations_and_the_comparison_figure(trained_tiny, demo_dataset, tmp_path):
    images = demo_dataset / "images" / "validation"
    predict(["--weights", str(trained_tiny / "model_0000050.pth"), str(trained_tiny / "model_final.pth"),
             "--input", str(images), "--annotations", str(demo_dataset / "annotations" / "validation"),
             "--limit", "3", "--titles", "early", "final", "--output", str(tmp_path), "--device", "cpu"])
    for path in sorted(images.iterdir())[:3]:
        width, height = Image.open(path).size
        for tag in ("early", "final"):
            labels = np.array(Image.open(tmp_path / f"{path.stem}_{tag}_labels.png"))
            assert labels.shape == (height, width) and labels.min() >= 1 and labels.max() <= 150
            assert Image.open(tmp_path / f"{path.stem}_{tag}.png").mode == "RGB"
    figure = Image.open(tmp_path / "figure.png")
    assert figure.width > 4 * 150 and figure.height > 3 * 100  # 4 columns (input, truth, 2 models), 3 rows


def test_predict_errors_name_the_problem(trained_tiny, tmp_path, capsys):
    """One line on stderr and exit status 2, as for every user error."""
    assert predict(["--weights", str(trained_tiny / "model_final.pth"), "--input", str(tmp_path / "nothing_here.jpg"),
                    "--output", str(tmp_path)]) == 2
    assert re.fullmatch(r"carafe-seg-predict: error: --input .*nothing_here.jpg: no such file or folder\n",
                        capsys.readouterr().err)
    foreign = save_checkpoint(tmp_path / "other.pth", {"kind": "carafe-inpaint", "model": {}})
    assert predict(["--weights", str(foreign), "--input", str(tmp_path), "--output", str(tmp_path)]) == 2
    assert "other.pth is a checkpoint of 'carafe-inpaint', expected 'carafe-seg'" in capsys.readouterr().err


def test_step_benchmark_of_the_paper_models_runs(tmp_path):
    """The command a GPU session runs, with its default configs (ResNet-50 UperNet, baseline and CARAFE), here on
    the CPU with small images."""
    output = tmp_path / "step.json"
    step_benchmark(["--device", "cpu", "--size", "64", "96", "--warmup", "0", "--steps", "1", "--output", str(output)])
    result = json.loads(output.read_text())
    baseline, carafe = result["results"]
    assert (baseline["config"], carafe["config"]) == ("upernet_r50_ade20k.yaml", "upernet_r50_ade20k_carafe.yaml")
    assert (baseline["upsamplers"], carafe["upsamplers"]) == ("bilinear", "CARAFE")
    assert carafe["parameters"] - baseline["parameters"] == 2_337_136
    assert carafe["median_step_s"] > 0 and np.isfinite(carafe["final_loss"])
    assert result["size"] == [64, 96] and result["batch"] == 2 and baseline["peak_memory_gib"] is None


def test_demo_runs_end_to_end(tmp_path):
    """python -m carafe_seg.demo (what ci/demo.sh runs), on a handful of scenes and one pass."""
    from carafe_seg.demo.__main__ import main as demo

    demo(["--output", str(tmp_path / "demo"), "--train", "16", "--val", "4", "--epochs", "1"])
    out = tmp_path / "demo"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"bilinear", "CARAFE"}
    assert metrics["models"]["CARAFE"]["upsamplers"] == {"PPM": "carafe", "FPN": "carafe", "FUSION": "carafe"}
    assert "| CARAFE |" in (out / "summary.md").read_text()
    for figure in ("figure3_segmentation.png", "training_curves.png"):
        assert Image.open(out / figure).width > 300


@pytest.mark.parametrize("args, message", [
    (["--config-file", "tiny.yaml", "MODEL.UPSAMPLER.FPN", "deconv"],
     "command-line override: MODEL.UPSAMPLER.FPN 'deconv' is not one of bilinear, carafe"),
    (["--config-file", "tiny.yaml", "SOLVER.BASE_RL", "0.1"], "did you mean SOLVER.BASE_LR?"),
    (["--config-file", "no_such.yaml"], "config file not found: no_such.yaml"),
    (["--config-file", "tiny.yaml", "--num-machines", "2", "--machine-rank", "2"], "--machine-rank"),
])
def test_user_errors_are_one_line_and_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train(args)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(error.splitlines()) == 1 and message in error, error


def test_a_missing_dataset_is_one_line_and_exit_2(tmp_path, capsys):
    assert train(tiny_args("tiny.yaml", tmp_path / "nowhere", tmp_path / "out")) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "dataset folder not found" in error and "DATASETS.ROOT" in error, error
