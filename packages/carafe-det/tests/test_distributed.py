"""Two CPU processes (gloo): gradients are averaged over the processes before every step, and carafe-det-train
--num-gpus 2 trains and evaluates with them."""

from __future__ import annotations

import json

import torch
import torch.distributed as dist
from carafe_engine import TrainingSampler, get_rank, launch
from torch.nn.parallel import DistributedDataParallel

from carafe_det.configs import resolve_config_path
from carafe_det.torchvision_engine import CocoDetectionDataset, build_model, load_torchvision_config
from carafe_det.cli.train import main as train_main
from conftest import tiny_opts


def _gradients(model) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters() if p.requires_grad]


def _check_synchronized_gradients(root: str) -> None:
    """In each process: the local gradient of its own half of the batch (no_sync), then the DDP gradient; the
    DDP gradient must be the same in both processes and equal to the mean of the local ones."""
    torch.set_num_threads(1)
    rank = get_rank()
    cfg = load_torchvision_config(resolve_config_path("torchvision/tiny_shapes_mask_rcnn_carafe.yaml"),
                                  ["INPUT.MIN_SIZE_TRAIN", "96", "INPUT.MAX_SIZE_TRAIN", "96"])
    torch.manual_seed(0)
    model = DistributedDataParallel(build_model(cfg).train())
    dataset = CocoDetectionDataset(root, "train", with_masks=True, filter_empty=True, hflip_prob=0.5)
    (batch,) = list(TrainingSampler(len(dataset), 4, seed=0, max_iter=1, rank=rank, world_size=2))
    images, targets = zip(*[dataset[item] for item in batch])

    def backward(synchronized: bool) -> list[torch.Tensor]:
        model.zero_grad()
        torch.manual_seed(100 + rank)  # the same proposal sampling in both passes
        if synchronized:
            sum(model(list(images), list(targets)).values()).backward()
        else:
            with model.no_sync():
                sum(model(list(images), list(targets)).values()).backward()
        return _gradients(model)

    local, synced = backward(False), backward(True)
    gathered_local = [None, None]
    gathered_synced = [None, None]
    dist.all_gather_object(gathered_local, local)
    dist.all_gather_object(gathered_synced, synced)
    assert any(not torch.equal(a, b) for a, b in zip(*gathered_local)), "the processes saw the same images"
    for index, (a, b) in enumerate(zip(*gathered_synced)):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"gradient {index} differs between processes")
        mean = (gathered_local[0][index] + gathered_local[1][index]) / 2
        torch.testing.assert_close(a, mean, rtol=1e-4, atol=1e-6, msg=f"gradient {index} is not the mean")


def test_gradients_are_averaged_over_two_processes(shapes_root):
    launch(_check_synchronized_gradients, 2, args=(str(shapes_root),))


def test_train_with_two_cpu_processes(shapes_root, tmp_path, capsys):
    output = tmp_path / "two"
    assert train_main(["--engine", "torchvision", "--num-gpus", "2", "--config-file",
                       "torchvision/tiny_shapes_mask_rcnn_carafe.yaml", *tiny_opts(shapes_root, output, 3)]) == 0
    log = (output / "log.txt").read_text()
    assert "2 process(es)" in log and "iter 3/3" in log
    assert (output / "model_final.pth").is_file()
    evaluation = json.loads((output / "eval.json").read_text())
    assert evaluation["images"] == 12 and "segm" in evaluation  # both processes' shares of the images scored
    state = torch.load(output / "model_final.pth", weights_only=True)
    assert len(state["rng_states"]) == 2 and state["iteration"] == 3
