"""torch.distributed launch and helpers. `launch` starts one process per GPU (or, on a machine without GPUs, one
CPU process per requested worker, with gloo) in the style of detectron2's launch; under `torchrun` the
environment already describes the process group and `launch` just joins it."""

from __future__ import annotations

import datetime
import os
import socket
from typing import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def select_device(requested: str | None = "auto", what: str = "MODEL.DEVICE") -> torch.device:
    """The device a process computes on. 'auto' (or None): this process's GPU where there is one (launch makes
    each process's GPU current), else the CPU; 'cpu'; 'cuda' (the current GPU) or 'cuda:N'. Asking for a GPU on a
    machine without one is a ConfigError naming `what`, the key or flag the request came from."""
    from .config import ConfigError

    requested = "auto" if requested is None else str(requested)
    if requested == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "cuda" or requested.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{what} is {requested!r} but this machine has no CUDA GPU (use auto or cpu)")
        device = torch.device(requested)
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise ConfigError(f"{what} is {requested!r} but this machine has {torch.cuda.device_count()} GPU(s)")
        return torch.device("cuda", index)
    raise ConfigError(f"{what} must be auto, cpu, cuda or cuda:N; got {requested!r}")


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if get_world_size() > 1:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over processes; a no-op in a single process. Returns a tensor on the input's device (moved to the GPU
    and back when the backend is NCCL and the tensor lives on the CPU, e.g. metric counts)."""
    if get_world_size() == 1:
        return tensor
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        on_gpu = tensor.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(on_gpu)
        return on_gpu.to(tensor.device)
    dist.all_reduce(tensor)
    return tensor


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean over processes; a no-op in a single process."""
    if get_world_size() == 1:
        return tensor
    return all_reduce_sum(tensor) / get_world_size()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def _worker(local_rank, main_func, world_size, per_machine, machine_rank, dist_url, args, timeout):
    rank = machine_rank * per_machine + local_rank
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(_backend(), init_method=dist_url, world_size=world_size, rank=rank, timeout=timeout)
    try:
        main_func(*args)
    finally:
        dist.destroy_process_group()


def launch(main_func: Callable, num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0,
           dist_url: str = "auto", args: tuple = (), timeout: datetime.timedelta = datetime.timedelta(minutes=30)):
    """Runs main_func(*args) in num_gpus_per_machine processes on each of num_machines machines.

    num_gpus_per_machine counts GPUs where there are some, CPU worker processes (gloo) where there are none.
    Under torchrun (RANK and WORLD_SIZE set) it joins the group torchrun describes instead.
    """
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
        dist.init_process_group(_backend(), init_method="env://", timeout=timeout)
        try:
            return main_func(*args)
        finally:
            dist.destroy_process_group()
    if num_gpus_per_machine < 1 or num_machines < 1:
        raise ValueError(f"need at least one process: num_gpus={num_gpus_per_machine}, num_machines={num_machines}")
    if torch.cuda.is_available() and num_gpus_per_machine > torch.cuda.device_count():
        raise ValueError(f"--num-gpus {num_gpus_per_machine} but this machine has {torch.cuda.device_count()} GPUs")
    world_size = num_gpus_per_machine * num_machines
    if world_size == 1:
        return main_func(*args)
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("dist_url='auto' only works on one machine; give --dist-url tcp://HOST:PORT")
        dist_url = f"tcp://127.0.0.1:{_free_port()}"
    mp.start_processes(_worker, nprocs=num_gpus_per_machine, start_method="spawn", daemon=False,
                       args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout))
