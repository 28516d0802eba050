"""Two CPU processes (gloo) train like one: the engine's sampler gives each process half of every global batch,
MODEL.SYNC_BN synchronizes BatchNorm on the CPU too (CPUSyncBatchNorm), the losses are averaged over the global
batch, and DistributedDataParallel averages the gradients. So --num-gpus 2 with SOLVER.IMS_PER_BATCH 4 ends with
the weights of one process with 4, up to the order of float summations.

Where a gradient is zero in exact arithmetic - the bias of a convolution right before a BatchNorm, which the
normalization subtracts again - the computed one is float noise, and Adam scales noise up to full steps (at most
(1 - beta1) / sqrt(1 - beta2) = 1.6 x BASE_LR each, in either direction): such a bias, and the running mean it
shifts, may differ by up to 2 x 1.6 x MAX_ITER x BASE_LR while computing the same function. The test compares
those to that bound, everything else and the networks' outputs tightly."""

from __future__ import annotations

import json

import torch
from conftest import FAST, run_command, start_command

from carafe_inpaint import get_config
from carafe_inpaint.engine import validation_set
from carafe_inpaint.inference import load_generator

TRAIN = "carafe_inpaint.cli.train"


def test_two_processes_train_like_one_with_the_same_total_batch(tmp_path):
    args = ["--config-file", "tiny_carafe", *FAST, "SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "2",
            "TEST.EVAL_PERIOD", "4", "TEST.PRECISE_BN.NUM_ITER", "3", "VIS.PERIOD", "4"]
    one = start_command(TRAIN, *args, "OUTPUT_DIR", tmp_path / "one")  # alongside, on the other core
    two = run_command(TRAIN, "--num-gpus", "2", *args, "OUTPUT_DIR", tmp_path / "two")
    assert two.returncode == 0, two.stdout + two.stderr
    assert one.wait(timeout=300) == 0, one.stdout.read()
    assert "in 2 process(es)" in two.stdout and "4 per batch" in two.stdout
    assert two.stdout.count("evaluation at iteration 4: 6 pairs") == 1  # printed by the main process only

    a = torch.load(tmp_path / "one" / "model_final.pth", weights_only=True)
    b = torch.load(tmp_path / "two" / "model_final.pth", weights_only=True)
    assert len(b["rng_states"]) == 2
    for network in ("generator", "discriminator"):
        assert a[network].keys() == b[network].keys()  # no DDP 'module.' prefixes, plain BatchNorm names
        no_effect = {name for name in a[network] if name.endswith("conv.bias")
                     and name.replace("conv.bias", "norm.weight") in a[network]}
        no_effect |= {name.replace("conv.bias", "norm.running_mean") for name in no_effect}
        for name, tensor in a[network].items():
            tolerance = dict(rtol=0, atol=2 * 1.6 * 4 * 3e-4) if name in no_effect else dict(rtol=1e-3, atol=1e-4)
            torch.testing.assert_close(b[network][name], tensor, **tolerance, msg=f"{network}.{name}")
    # the two generators complete the validation pairs alike
    pairs = validation_set(get_config("tiny_carafe", FAST))
    image = torch.stack([pairs[i]["image"] for i in range(len(pairs))])
    mask = torch.stack([pairs[i]["mask"] for i in range(len(pairs))])
    with torch.no_grad():
        outputs = [load_generator(tmp_path / run / "model_final.pth", torch.device("cpu"))[0](image, mask)
                   for run in ("one", "two")]
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=1e-4)
    metrics = [json.loads((tmp_path / run / "eval.json").read_text()) for run in ("one", "two")]
    # the per-bin sums are all-reduced too: each process scored only half of every bin's pairs
    assert [b["pairs"] for b in metrics[1]["bins"].values()] == [b["pairs"] for b in metrics[0]["bins"].values()] \
        == [2, 1, 1, 1, 1]
    parts = [(metrics[0][part], metrics[1][part], part) for part in ("model", "masked_input")]
    parts += [(metrics[0]["bins"][label][part], metrics[1]["bins"][label][part], f"{label} {part}")
              for label in metrics[0]["bins"] for part in ("model", "masked_input")]
    for expected, actual, part in parts:
        for name, value in expected.items():
            assert abs(actual[name] - value) <= 1e-5 * max(1.0, abs(value)), (part, name)
