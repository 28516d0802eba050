"""The commands end to end on the embedded photographs: train, kill and resume, evaluate, predict; and the clear
errors for bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST, run_command, start_command

from carafe_inpaint import read_image, seeded_mask
from carafe_inpaint.data.embedded import photographs
from carafe_inpaint.data.images import write_image, write_mask
from carafe_inpaint.cli.predict import main as predict_main
from carafe_inpaint.cli.train import main as train_main

TRAIN = "carafe_inpaint.cli.train"
PREDICT = "carafe_inpaint.cli.predict"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny_carafe")
    result = run_command(TRAIN, "--config-file", "tiny_carafe", *FAST, "SOLVER.MAX_ITER", "6",
                         "SOLVER.CHECKPOINT_PERIOD", "3", "TEST.EVAL_PERIOD", "3", "VIS.PERIOD", "3", "OUTPUT_DIR", out)
    assert result.returncode == 0, result.stdout + result.stderr
    (out / "stdout.txt").write_text(result.stdout)
    return out


def test_training_writes_checkpoints_metrics_samples_and_progress(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"config.yaml", "log.txt", "model_0000003.pth", "model_final.pth", "last_checkpoint", "metrics.jsonl",
            "eval.json", "samples"} <= names
    assert (trained / "last_checkpoint").read_text() == "model_final.pth"
    assert sorted(p.name for p in (trained / "samples").iterdir()) == ["iter_0000003.png", "iter_0000006.png"]
    sample = read_image(trained / "samples" / "iter_0000006.png")
    assert sample.shape == (4 * 32 + 3 * 2, 4 * 32 + 3 * 2, 3)  # 4 validation pairs x (input, ŷ, y, original)
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if "seconds_per_iter" in r]
    assert [r["iteration"] for r in train_records] == [2, 4, 6]
    assert all({"loss_l1_hole", "loss_l1_valid", "loss_adv", "loss_d", "seconds_per_iter"} <= set(r)
               for r in train_records)
    evaluations = [r for r in records if "model/psnr" in r]  # the engine's flattened results
    assert [r["iteration"] for r in evaluations] == [3, 6]
    assert {"model/ssim", "model/l1_hole", "masked_input/psnr", "pairs", "bins/10-20%/pairs", "bins/50-60%/model/psnr",
            "bins/30-40%/masked_input/ssim"} <= set(evaluations[-1])
    final = json.loads((trained / "eval.json").read_text())
    assert final["iteration"] == 6 and final["model"]["psnr"] == evaluations[-1]["model/psnr"]
    assert [b["pairs"] for b in final["bins"].values()] == [2, 1, 1, 1, 1]  # 6 pairs, the bins in turn
    stdout = (trained / "stdout.txt").read_text()
    assert "iter 6/6" in stdout and "ETA" in stdout and "evaluation at iteration 6: 6 pairs" in stdout
    bins = final["bins"]
    assert (f"per coverage bin (pairs): PSNR model/masked input 10-20% (2): {bins['10-20%']['model']['psnr']:.2f}/"
            f"{bins['10-20%']['masked_input']['psnr']:.2f}, 20-30% (1): ") in stdout
    state = torch.load(trained / "model_final.pth", weights_only=True)
    assert state["kind"] == "carafe-inpaint" and state["iteration"] == 6
    assert {"generator", "discriminator", "optimizer_g", "optimizer_d", "config"} <= set(state)
    assert state["config"]["MODEL"]["UPSAMPLER"] == "carafe"


def test_eval_only_reproduces_the_final_evaluation(trained, tmp_path):
    """The checkpoint holds the PreciseBN statistics the training run evaluated with; --eval-only evaluates them as
    saved (it does not recompute them), so it gives the training run's final numbers exactly."""
    final = json.loads((trained / "eval.json").read_text())
    result = run_command(TRAIN, "--config-file", "tiny_carafe", "--eval-only", *FAST,
                         "MODEL.WEIGHTS", trained / "model_final.pth", "OUTPUT_DIR", tmp_path / "eval")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "eval" / "eval.json").read_text()) == final
    assert not list((tmp_path / "eval").glob("*.pth"))  # evaluation writes no checkpoint
    # nothing to evaluate: neither MODEL.WEIGHTS nor --resume with a checkpoint
    result = run_command(TRAIN, "--config-file", "tiny_carafe", "--eval-only", *FAST, "OUTPUT_DIR", tmp_path / "none")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--eval-only needs MODEL.WEIGHTS" in result.stderr


def test_kill_and_resume_ends_where_an_uninterrupted_run_ends(tmp_path, capsys):
    args = ["--config-file", "tiny_deconv", *FAST, "SOLVER.MAX_ITER", "24", "SOLVER.CHECKPOINT_PERIOD", "4",
            "TEST.EVAL_PERIOD", "1000", "VIS.PERIOD", "1000"]
    straight = start_command(TRAIN, *args, "OUTPUT_DIR", tmp_path / "straight")  # alongside, on the other core
    killed_dir = tmp_path / "killed"
    process = start_command(TRAIN, *args, "OUTPUT_DIR", killed_dir)
    deadline = time.monotonic() + 240
    while not (killed_dir / "last_checkpoint").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed_dir / "model_final.pth").exists()
    assert not list(killed_dir.glob(".*.tmp"))  # no torn checkpoint files are left behind

    resumed = run_command(TRAIN, "--resume", *args, "OUTPUT_DIR", killed_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert straight.wait(timeout=240) == 0, straight.stdout.read()
    resumed_at = int(re.search(r"resumed from .*model_(\d+).pth at iteration (\d+)", resumed.stdout).group(2))
    assert 4 <= resumed_at < 24 and resumed_at % 4 == 0
    a = torch.load(tmp_path / "straight" / "model_final.pth", weights_only=True)
    b = torch.load(killed_dir / "model_final.pth", weights_only=True)
    for network in ("generator", "discriminator"):
        for name, tensor in a[network].items():
            assert torch.equal(tensor, b[network][name]), f"{network}.{name} differs after kill and resume"
    assert a["optimizer_g"]["state"][0]["step"] == b["optimizer_g"]["state"][0]["step"] == 24

    # --resume on a finished run has nothing left to do
    assert train_main(["--resume", *args, "OUTPUT_DIR", str(killed_dir)]) == 0
    assert "already trained to iteration 24" in capsys.readouterr().out


def test_training_into_another_runs_folder_needs_resume(trained):
    before = sorted(p.name for p in trained.iterdir())
    result = run_command(TRAIN, "--config-file", "tiny_carafe", *FAST, "SOLVER.MAX_ITER", "6", "OUTPUT_DIR", trained)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "holds the checkpoints of an earlier run" in result.stderr and "--resume" in result.stderr
    assert sorted(p.name for p in trained.iterdir()) == before


def test_resume_when_the_last_checkpoint_is_gone(trained, tmp_path):
    """last_checkpoint names a deleted file: the run resumes from the newest checkpoint that is there, and logs
    the iterations after it once."""
    copy = shutil.copytree(trained, tmp_path / "copy")
    (copy / "model_final.pth").unlink()
    result = run_command(TRAIN, "--config-file", "tiny_carafe", "--resume", *FAST, "SOLVER.MAX_ITER", "6",
                         "SOLVER.CHECKPOINT_PERIOD", "3", "TEST.EVAL_PERIOD", "3", "VIS.PERIOD", "3", "OUTPUT_DIR", copy)
    assert result.returncode == 0, result.stderr
    assert "names model_final.pth, which is missing" in result.stdout and "at iteration 3" in result.stdout
    records = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    logged = [r["iteration"] for r in records if "seconds_per_iter" in r]
    assert logged == [2, 4, 6]
    assert torch.load(copy / "model_final.pth", weights_only=True)["iteration"] == 6


def test_predict_one_and_two_checkpoints(trained, tmp_path, capsys):
    photo = photographs("val")[0][1][:50, :74]  # 50x74: not a multiple of 4, completed at its own size
    write_image(tmp_path / "coffee.png", photo)
    mask = seeded_mask(50, 74, 1, 0)
    write_mask(tmp_path / "coffee_hole.png", mask)
    out = tmp_path / "one"
    result = run_command(PREDICT, "--weights", trained / "model_final.pth", "--input", tmp_path / "coffee.png",
                         "--mask", tmp_path / "coffee_hole.png", "--output", out)
    assert result.returncode == 0, result.stderr
    completed = read_image(out / "coffee_CARAFE.png")
    assert completed.shape == photo.shape
    keep = mask == 0
    assert np.array_equal(completed[keep], photo[keep])  # known pixels are copied through
    assert not np.array_equal(completed[~keep], photo[~keep])
    assert {"coffee_masked.png", "coffee_mask.png", "comparison.png", "predictions.json"} <= {p.name for p in out.iterdir()}

    # two checkpoints: the paper's Figure 4 layout, masks generated from a seed, the central 32x32 view
    base = trained / "model_0000003.pth"
    out = tmp_path / "two"
    assert predict_main(["--weights", str(base), str(trained / "model_final.pth"), "--titles", "early", "final",
                         "--input", str(tmp_path / "coffee.png"), str(tmp_path / "coffee.png"), "--mask-seed", "4",
                         "--size", "32", "--output", str(out)]) == 0
    stdout = capsys.readouterr().out
    report = json.loads((out / "predictions.json").read_text())
    assert list(report["checkpoints"]) == ["early", "final"] and len(report["images"]) == 2
    assert read_image(out / "coffee1_final.png").shape == read_image(out / "coffee2_early.png").shape == (32, 32, 3)
    figure = read_image(out / "comparison.png")
    assert figure.shape[1] > figure.shape[0]  # 4 columns (input, early, final, original) by 2 rows
    assert "early" in stdout and "dB" in stdout


def test_predict_reports_bad_input(trained, tmp_path, capsys):
    checkpoint = trained / "model_final.pth"
    write_image(tmp_path / "photo.png", photographs("val")[1][1][:40, :40])
    write_mask(tmp_path / "small_mask.png", np.ones((20, 20), np.float32))
    (tmp_path / "broken.jpg").write_bytes(b"garbage")
    cases = [
        (["--input", tmp_path / "broken.jpg"], "cannot read image .*broken.jpg"),
        (["--input", tmp_path / "photo.png", "--mask", tmp_path / "small_mask.png"],
         r"mask .*small_mask.png is 20x20 \(HxW\); expected 40x40"),
        (["--input", tmp_path / "photo.png", "--mask", tmp_path / "photo.png"], r"photo.png is a colour image"),
        (["--input", tmp_path / "photo.png", "--mask", tmp_path / "small_mask.png", tmp_path / "x.png"],
         "--mask: 2 masks for 1 images"),
        # the parser's own errors (carafe_engine.CommandLineParser): one line too
        (["--input", tmp_path / "photo.png", "--titles", "a", "b"], "--titles: 2 titles for 1 checkpoints"),
        (["--input", tmp_path / "photo.png", "--size", "30"], "--size must be a positive multiple of 4"),
    ]
    for args, message in cases:
        status = exit_status(predict_main, ["--weights", str(checkpoint), *map(str, args), "--output",
                                            str(tmp_path / "out")])
        error = capsys.readouterr().err
        assert status == 2 and re.search(message, error) and len(error.strip().splitlines()) == 1, (message, error)
    assert exit_status(predict_main, ["--weights", str(tmp_path / "photo.png"), "--input", str(tmp_path / "photo.png"),
                                      "--output", str(tmp_path / "out")]) == 2
    assert "photo.png is not a readable checkpoint" in capsys.readouterr().err


def exit_status(main, argv) -> int:
    """A command's exit status, returned or raised (argparse's errors and the config's raise SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


def test_training_reports_bad_input(tmp_path, photo_folder, capsys):
    cases = [
        (["MODEL.UPSAMPLR", "carafe"], "unknown config key 'MODEL.UPSAMPLR'"),
        (["MODEL.UPSAMPLER", "bilinear"], "MODEL.UPSAMPLER 'bilinear' is not one of deconv, carafe"),
        (["MODEL.CONV", "gated"], "MODEL.CONV 'gated' is not one of standard, partial"),
        (["DATASETS.IMAGE_SIZE", "30"], "DATASETS.IMAGE_SIZE must be a positive multiple of 4"),
        (["DATA.IMAGE_SIZE", "32"], "config key 'DATA.IMAGE_SIZE' was renamed to 'DATASETS.IMAGE_SIZE'"),
    ]
    (tmp_path / "empty").mkdir()
    (photo_folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    runs = [
        (["DATASETS.TRAIN", str(tmp_path / "empty")], "DATASETS.TRAIN: the folder .*empty holds no images"),
        (["DATASETS.TRAIN", str(photo_folder)], r"cannot read image .*broken.jpg"),
        (["DATASETS.VAL_MASKS", str(tmp_path / "no_such_masks")], "DATASETS.VAL_MASKS: mask folder not found"),
    ]
    for number, (opts, message) in enumerate(cases + runs):
        assert exit_status(train_main, ["--config-file", "tiny_deconv", *FAST, "SOLVER.MAX_ITER", "2",
                                        "TEST.EVAL_PERIOD", "1000", "VIS.PERIOD", "1000",
                                        "OUTPUT_DIR", str(tmp_path / f"out{number}"), *opts]) == 2, message
        error = capsys.readouterr().err
        assert re.search(message, error) and len(error.strip().splitlines()) == 1, (message, error)
    with pytest.raises(SystemExit):
        train_main(["--config-file", str(tmp_path / "nope.yaml")])
    assert "config file not found" in capsys.readouterr().err


def test_demo_runs_end_to_end(tmp_path):
    """python -m carafe_inpaint.demo (what ci/demo.sh runs), with a few iterations: both models side by side, the
    per-bin table, the figures."""
    from PIL import Image

    from carafe_inpaint.data.mask_set import BIN_LABELS
    from carafe_inpaint.demo.__main__ import main as demo

    out = tmp_path / "demo"
    assert demo(["--output", str(out), "--iters", "4"]) in (0, None)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["iterations"].values()) == {4} and set(metrics["metrics"]) >= {"baseline", "CARAFE"}
    assert list(metrics["metrics_per_bin"]) == list(BIN_LABELS)
    assert all(b["pairs"] == 9 and set(b) >= {"baseline", "CARAFE", "masked input"}
               for b in metrics["metrics_per_bin"].values())
    summary = (out / "summary.md").read_text()
    assert "| hole coverage |" in summary and "| 50-60% |" in summary
    for figure in ("figure4_inpainting.png", "free_form_masks.png", "training_curves.png"):
        assert Image.open(out / figure).width > 300
