"""Multi-process training on CPUs (gloo), the stand-in for the paper's 8 GPUs: BatchNorm converted to the
synchronized kind and gradients synchronized, so that two processes with 2 images each take exactly the step one
process takes with all 4; and the training command with --num-gpus 2."""

from __future__ import annotations

import json

import pytest
import torch
from carafe_engine import CPUSyncBatchNorm, convert_sync_batchnorm, launch
from torch import nn

from carafe_seg.config import load_seg_config

import distributed_worker
from conftest import run_module, tiny_args


def test_two_processes_take_the_step_of_one_process_on_the_whole_batch(tmp_path):
    launch(distributed_worker.worker, 2, args=(str(tmp_path),))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    cfg = load_seg_config("tiny_carafe.yaml")
    images, targets = distributed_worker.fixed_batch(cfg)
    reference = distributed_worker.step(distributed_worker.new_model(cfg), cfg, images, targets, sync=False)

    for rank in ranks:
        assert rank["world_size"] == 2
        # every BatchNorm became the synchronized kind (CPU: CPUSyncBatchNorm; nn.SyncBatchNorm on GPUs)
        assert rank["norm_layers"] == ["CPUSyncBatchNorm"]
        for name, grad in reference["grads"].items():  # DDP averaged the gradients over the processes
            torch.testing.assert_close(rank["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=f"gradient of {name}")
        for name, value in reference["state"].items():  # so the weights and the running statistics agree
            if value.is_floating_point():
                torch.testing.assert_close(rank["state"][name], value, rtol=1e-4, atol=1e-6, msg=name)
    assert ranks[0]["loss"] != pytest.approx(ranks[1]["loss"])  # the processes did see different images
    assert (ranks[0]["loss"] + ranks[1]["loss"]) / 2 == pytest.approx(reference["loss"], rel=1e-5)


def test_without_synchronization_the_statistics_differ(tmp_path):
    """The control for the test above: plain BatchNorm on half the batch gives other running statistics."""
    cfg = load_seg_config("tiny_carafe.yaml")
    images, targets = distributed_worker.fixed_batch(cfg)
    whole = distributed_worker.step(distributed_worker.new_model(cfg), cfg, images, targets, sync=False)
    half = distributed_worker.step(distributed_worker.new_model(cfg), cfg, images[:2], targets[:2], sync=False)
    name = "backbone.stem.1.running_mean"
    assert not torch.allclose(whole["state"][name], half["state"][name], atol=1e-4)


def test_conversion_keeps_weights_and_statistics():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    with torch.no_grad():
        model[1].weight.uniform_()
        model[1].running_mean.uniform_()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = convert_sync_batchnorm(model, torch.device("cpu"))
    assert isinstance(converted[1], CPUSyncBatchNorm) and isinstance(converted[2][0], CPUSyncBatchNorm)
    for key, value in converted.state_dict().items():
        assert torch.equal(value, before[key]), key
    # in one process (no process group) it is plain BatchNorm
    x = torch.randn(2, 4, 5, 5)
    reference = nn.BatchNorm2d(4)
    reference.load_state_dict({k.removeprefix("1."): v for k, v in before.items() if k.startswith("1.")})
    torch.testing.assert_close(converted[1](x), reference(x))


def test_training_command_with_two_cpu_processes(small_dataset, tmp_path):
    output = tmp_path / "two-processes"
    run_module("carafe_seg.cli.train", "--num-gpus", "2",
               *tiny_args("tiny_carafe.yaml", small_dataset, output, "SOLVER.EPOCHS", 1, "SOLVER.ITERS_PER_EPOCH", 3,
                          "SOLVER.IMS_PER_BATCH", 4), timeout=600)
    log = (output / "log.txt").read_text()
    assert "on cpu in 2 process(es): 32 images, 4 per batch, iterations 0..3" in log
    assert (output / "last_checkpoint").read_text() == "model_final.pth"
    evaluation = json.loads((output / "eval.json").read_text())
    assert evaluation["iteration"] == 3 and evaluation["images"] == 8
    lines = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["iteration"] == 3 and "loss" in lines[0] and "mIoU" in lines[-1]
