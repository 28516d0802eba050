"""Two CPU processes (gloo): gradients are averaged over the processes, both keep identical weights, and the
training command runs with --num-gpus 2."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
from conftest import FAST, run_command

from carafe_engine import get_rank, launch

from carafe_inpaint import get_config
from carafe_inpaint.trainer import Trainer, masked_mean


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def gathered(tensor: torch.Tensor) -> list[torch.Tensor]:
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor)
    return parts


def two_process_worker(output: str) -> None:
    torch.set_num_threads(1)
    cfg = get_config("tiny_carafe", FAST + ["SOLVER.MAX_ITER", "4", "LOSS.ADVERSARIAL", "0", "OUTPUT_DIR", output])
    trainer = Trainer(cfg, log=lambda *a, **k: None)
    batches = iter(trainer.train_loader())
    batch = next(batches)
    image, mask = batch["image"], batch["mask"]
    params = list(trainer.generator.parameters())

    # this process's own gradient of the generator loss, computed on the bare module
    error = (trainer.generator(image, mask) - image).abs()
    local_loss = masked_mean(error, mask) + masked_mean(error, 1 - mask)
    local_grads = flat(torch.autograd.grad(local_loss, params))

    # the real training step through DistributedDataParallel leaves the synchronized gradients in .grad
    generator = trainer.wrap(trainer.generator)
    discriminator = trainer.wrap(trainer.discriminator)
    trainer.step(generator, discriminator, image, mask, iteration=0)
    synced = flat(p.grad for p in params)
    all_local, all_synced = gathered(local_grads), gathered(synced)
    all_images = gathered(image)

    # more steps, now with the adversarial loss (both networks under DDP)
    trainer.cfg.LOSS.ADVERSARIAL = 0.1
    for iteration, batch in enumerate(batches, start=1):
        trainer.step(generator, discriminator, batch["image"], batch["mask"], iteration)
    weights = gathered(flat(list(trainer.generator.parameters()) + list(trainer.discriminator.parameters())))

    if get_rank() == 0:
        mean_local = (all_local[0] + all_local[1]) / 2
        result = {
            "batches_differ": not torch.equal(all_images[0], all_images[1]),
            "local_grads_differ": float((all_local[0] - all_local[1]).abs().max()),
            "synced_equal_across_ranks": torch.equal(all_synced[0], all_synced[1]),
            "synced_minus_mean_local": float((all_synced[0] - mean_local).abs().max()),
            "grad_scale": float(mean_local.abs().max()),
            "weights_equal_across_ranks": torch.equal(weights[0], weights[1]),
        }
        Path(output, "result.json").write_text(json.dumps(result))


def test_gradients_are_averaged_over_two_processes(tmp_path):
    launch(two_process_worker, 2, args=(str(tmp_path),))
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["batches_differ"] and result["local_grads_differ"] > 0
    assert result["synced_equal_across_ranks"]
    assert result["synced_minus_mean_local"] <= 1e-5 * result["grad_scale"]
    assert result["weights_equal_across_ranks"]


def test_training_command_with_two_processes(tmp_path):
    result = run_command("carafe_inpaint.train_net", "--num-gpus", "2", "--config-file", "tiny_partialconv", *FAST,
                         "SOLVER.MAX_ITER", "3", "TEST.EVAL_PERIOD", "3", "VIS.PERIOD", "3", "OUTPUT_DIR", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "batch 4 over 2 process(es)" in result.stdout
    assert result.stdout.count("eval @ 3 on 6 pairs") == 1  # printed by the main process only
    state = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert state["iteration"] == 3 and not any(k.startswith("module.") for k in state["generator"])
