"""The engine's Trainer on a toy task: output folder, exact resume, 2 processes = 1 process, the sampler."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from toy_task import ToyTrainer, toy_config

from carafe_engine import CheckpointError, ConfigError, TrainingSampler, launch, load_checkpoint, run_trainer


def final_weights(folder):
    return load_checkpoint(folder / "model_final.pth", kind="toy")["model"]


def records_without_times(folder):
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds_per_iter"} for r in records]


def assert_same_weights(a, b, **tolerance):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], **tolerance, msg=key)


def test_training_writes_the_run_folder(tmp_path):
    results = run_trainer(ToyTrainer, toy_config(tmp_path), resume=False, eval_only=False)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["config.yaml", "eval.json", "last_checkpoint", "log.txt", "metrics.jsonl", "model_0000004.pth",
                     "model_0000008.pth", "model_final.pth"]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if "loss" in r] == [2, 4, 6, 8, 10, 12]
    assert [r["iteration"] for r in records if "mse" in r] == [6, 12]
    assert json.loads((tmp_path / "eval.json").read_text()) == {"iteration": 12, **results}
    assert "ETA" in (tmp_path / "log.txt").read_text()
    # the schedule: poly decay from BASE_LR
    assert records[0]["lr"] == pytest.approx((0.05 + 0.05 * (1 - 1 / 12) ** 0.9) / 2)  # iterations 0 and 1
    assert results["mse"] < 10


def test_resume_after_a_kill_gives_the_uninterrupted_weights(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run_trainer(ToyTrainer, toy_config(whole), resume=False, eval_only=False)
    # a run killed after its checkpoint at iteration 4 (and after logging iterations 5 and 6)
    killed.mkdir()
    shutil.copy(whole / "model_0000004.pth", killed)
    (killed / "last_checkpoint").write_text("model_0000004.pth")
    lines = (whole / "metrics.jsonl").read_text().splitlines()
    (killed / "metrics.jsonl").write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(CheckpointError, match="--resume"):
        run_trainer(ToyTrainer, toy_config(killed), resume=False, eval_only=False)
    run_trainer(ToyTrainer, toy_config(killed), resume=True, eval_only=False)
    assert_same_weights(final_weights(killed), final_weights(whole), rtol=0, atol=0)
    assert records_without_times(killed) == records_without_times(whole)


def test_eval_only_evaluates_the_saved_weights(tmp_path):
    trained = run_trainer(ToyTrainer, toy_config(tmp_path / "run"), resume=False, eval_only=False)
    again = run_trainer(ToyTrainer, toy_config(tmp_path / "eval", "MODEL.WEIGHTS",
                                               str(tmp_path / "run" / "model_final.pth")), resume=False, eval_only=True)
    assert again == trained
    with pytest.raises(ConfigError, match="--eval-only needs MODEL.WEIGHTS"):
        run_trainer(ToyTrainer, toy_config(tmp_path / "none"), resume=False, eval_only=True)


def test_hooks_run_periodically_and_at_the_end(tmp_path):
    trainer = ToyTrainer(toy_config(tmp_path))
    trainer.resume_or_load(False)
    trainer.train()
    assert trainer.figures == [5, 10, 12]


def _two_process_run(output_dir):
    run_trainer(ToyTrainer, toy_config(output_dir), False, False)


def test_two_processes_train_like_one_with_the_same_total_batch(tmp_path):
    run_trainer(ToyTrainer, toy_config(tmp_path / "one"), resume=False, eval_only=False)
    launch(_two_process_run, 2, args=(tmp_path / "two",))
    # the same batches (each process half of every global batch) and synchronized BatchNorm statistics
    assert_same_weights(final_weights(tmp_path / "two"), final_weights(tmp_path / "one"), rtol=1e-4, atol=1e-5)


def test_sampler_stream_does_not_depend_on_the_process_count():
    one = TrainingSampler(10, 4, seed=1, max_iter=7)
    shares = [list(TrainingSampler(10, 4, seed=1, max_iter=7, rank=r, world_size=2)) for r in range(2)]
    assert [a + b for a, b in zip(*shares)] == list(one)
    assert one.batches_per_epoch == 2
    batches = [[s.index for s in batch] for batch in one]
    assert len(set(batches[0] + batches[1])) == 8  # an epoch takes each image at most once
    assert batches[:2] != batches[2:4]  # and each epoch has its own order
    positions = [s.position for batch in one for s in batch]
    assert positions == list(range(28))
    # resuming at iteration 3 continues the same stream
    assert list(TrainingSampler(10, 4, seed=1, max_iter=7, start_iter=3)) == list(one)[3:]


def test_sampler_groups_batches_and_checks_the_batch_size():
    groups = [0, 1] * 6
    for batch in TrainingSampler(12, 3, seed=0, max_iter=8, group_ids=groups):
        assert len({groups[s.index] for s in batch}) == 1
    with pytest.raises(ConfigError, match=r"SOLVER.IMS_PER_BATCH \(3\) must be divisible by the number of processes"):
        TrainingSampler(12, 3, seed=0, max_iter=1, world_size=2)
    with pytest.raises(ConfigError, match="too few images"):
        TrainingSampler(3, 4, seed=0, max_iter=1)


def test_a_user_error_in_a_worker_process_is_one_line_in_the_launching_one(tmp_path, capsys):
    """Each process finds 3 training images for batches of 4: a ConfigError in the spawned processes."""
    from carafe_engine import train_command

    status = train_command(TooFewImages, lambda path, opts: toy_config(tmp_path), "toy-train", "toy",
                           ["--num-gpus", "2"])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(error) == 1 and error[0].startswith("toy-train: error: the training set has too few")


class TooFewImages(ToyTrainer):
    def build_train_data(self):
        from toy_task import Points

        return Points(size=3), None
