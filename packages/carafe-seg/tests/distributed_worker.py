"""Run in each process of the 2-process CPU (gloo) test (carafe_engine.launch spawns it): one training step of the
tiny CARAFE model with synchronized BatchNorm under DDP, on this process's half of a fixed batch; saves the
BatchNorm layer types, the gradients, the weights and the BatchNorm running statistics after the step."""

from __future__ import annotations

import torch
from carafe_engine import convert_sync_batchnorm, get_rank, get_world_size
from torch.nn.parallel import DistributedDataParallel

from carafe_seg.config import load_seg_config
from carafe_seg.engine import parameter_groups, train_step
from carafe_seg.modeling import build_model


def fixed_batch(cfg, images: int = 4):
    """Random images with every pixel labelled, so that the mean loss over the whole batch equals the mean of
    the per-process mean losses (each process has as many labelled pixels)."""
    gen = torch.Generator().manual_seed(123)
    return torch.randn(images, 3, 64, 96, generator=gen), torch.randint(0, 6, (images, 64, 96), generator=gen)


def step(model, cfg, images, targets, sync: bool):
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(parameter_groups(model, cfg.SOLVER.WEIGHT_DECAY), lr=0.1, momentum=0.9)
    network = DistributedDataParallel(model) if sync else model
    loss = train_step(network, optimizer, images, targets, cfg.INPUT.LABEL_DOWNSAMPLE)
    return {
        "loss": loss.item(),
        "grads": {name: p.grad.clone() for name, p in model.named_parameters()},
        "state": {name: t.clone() for name, t in model.state_dict().items()},
    }


def new_model(cfg):
    torch.manual_seed(cfg.SEED)
    return build_model(cfg)


def worker(output: str) -> None:
    torch.set_num_threads(1)
    cfg = load_seg_config("tiny_carafe.yaml")
    images, targets = fixed_batch(cfg)
    rank, world_size = get_rank(), get_world_size()
    share = slice(rank * 2, rank * 2 + 2)
    model = convert_sync_batchnorm(new_model(cfg), torch.device("cpu"))
    result = step(model, cfg, images[share], targets[share], sync=True)
    result["norm_layers"] = sorted({type(m).__name__ for m in model.modules() if "Norm" in type(m).__name__})
    result["world_size"] = world_size
    torch.save(result, f"{output}/rank{rank}.pt")
