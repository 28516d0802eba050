"""torch.distributed launch and helpers. `launch` starts one process per GPU (or, on a machine without GPUs, one
CPU process per requested worker, with gloo) in the style of detectron2's launch; under `torchrun` the
environment already describes the process group and `launch` just joins it."""

from __future__ import annotations

import datetime
import logging
import os
import socket
import sys
import time
from typing import Callable
from urllib.parse import urlsplit

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .config import ConfigError


def select_device(requested: str | None = "auto", what: str = "MODEL.DEVICE") -> torch.device:
    """The device a process computes on. 'auto' (or None): this process's GPU where there is one (launch makes
    each process's GPU current), else the CPU; 'cpu'; 'cuda' (the current GPU) or 'cuda:N'. Asking for a GPU on a
    machine without one is a ConfigError naming `what`, the key or flag the request came from."""
    requested = "auto" if requested is None else str(requested)
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
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
    """Sum over processes, as a new tensor on the input's device (the input is left as it is: it may be a model's
    buffer); the input itself in a single process. On NCCL a CPU tensor (e.g. metric counts) goes to the GPU and
    back."""
    if get_world_size() == 1:
        return tensor
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        on_gpu = tensor.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(on_gpu)
        return on_gpu.to(tensor.device)
    total = tensor.clone()
    dist.all_reduce(total)
    return total


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


DEFAULT_RENDEZVOUS_TIMEOUT_S = 600.0
_REPORT_EVERY_S = 30.0


class RendezvousError(RuntimeError):
    """The processes of a launch did not all meet at the dist_url in time."""


class WorkerUserError(RuntimeError):
    """A user error (carafe_engine.USER_ERRORS: a config key, a dataset, a checkpoint) raised in a process that
    launch spawned, re-raised in the launching process with the worker's one-line message."""


def _host_port(dist_url: str) -> tuple[str, int]:
    """HOST and PORT of tcp://HOST:PORT; ValueError otherwise."""
    parts = urlsplit(dist_url)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if parts.scheme != "tcp" or not parts.hostname or parts.path or port is None:
        raise ValueError(f"--dist-url must be 'auto' or tcp://HOST:PORT (machine 0's address), got {dist_url!r}")
    if not 1 <= port <= 65535:
        raise ValueError(f"--dist-url {dist_url}: the port must be 1 .. 65535")
    return parts.hostname, port


def check_launch(num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0, dist_url: str = "auto",
                 rendezvous_timeout: float | None = None) -> None:
    """ValueError, one line naming the flag, for launch arguments that cannot work together."""
    if num_gpus_per_machine < 1:
        raise ValueError(f"--num-gpus must be >= 1, got {num_gpus_per_machine}")
    if torch.cuda.is_available() and num_gpus_per_machine > torch.cuda.device_count():
        raise ValueError(f"--num-gpus {num_gpus_per_machine} but this machine has {torch.cuda.device_count()} GPUs")
    if num_machines < 1:
        raise ValueError(f"--num-machines must be >= 1, got {num_machines}")
    if not 0 <= machine_rank < num_machines:
        raise ValueError(f"--machine-rank must be 0 .. {num_machines - 1} with --num-machines {num_machines}, "
                         f"got {machine_rank}")
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("--dist-url auto only works on one machine; give every machine machine 0's address, "
                             "--dist-url tcp://HOST:PORT")
    else:
        _host_port(dist_url)
    if rendezvous_timeout is not None and not rendezvous_timeout > 0:
        raise ValueError(f"--dist-timeout must be a number of seconds > 0, got {rendezvous_timeout}")


def _rendezvous(dist_url: str, rank: int, world_size: int, timeout_s: float,
                report_every_s: float = _REPORT_EVERY_S) -> dist.TCPStore:
    """The store every rank meets at: rank 0 serves it at dist_url, each rank sets arrived/<rank>, and rank 0
    waits for all of them, saying which are missing every report_every_s; RendezvousError after timeout_s."""
    host, port = _host_port(dist_url)
    advice = "check --num-machines, --machine-rank and --dist-url on every machine"
    deadline = time.monotonic() + timeout_s
    try:
        store = dist.TCPStore(host, port, world_size, is_master=rank == 0, wait_for_workers=False,
                              timeout=datetime.timedelta(seconds=timeout_s))
    except (RuntimeError, OSError) as error:
        if rank == 0:
            raise RendezvousError(f"rendezvous at {dist_url}: rank 0 cannot serve on port {port}; is another run "
                                  f"using it? ({str(error).splitlines()[0]})") from None
        raise RendezvousError(f"rendezvous at {dist_url} timed out after {timeout_s:g} s: rank {rank} could not "
                              f"reach rank 0 there ({advice})") from None
    store.set(f"arrived/{rank}", "1")
    if rank != 0:
        try:  # rank 0 says when all are there
            store.wait(["complete"], datetime.timedelta(seconds=max(deadline - time.monotonic(), 0.001)))
        except (RuntimeError, OSError):
            raise RendezvousError(f"rendezvous at {dist_url} timed out after {timeout_s:g} s: rank {rank} reached "
                                  f"rank 0 but not all {world_size} ranks arrived ({advice})") from None
        return store
    start = time.monotonic()
    next_report = start + report_every_s
    missing = list(range(1, world_size))
    while missing := [r for r in missing if not store.check([f"arrived/{r}"])]:
        now = time.monotonic()
        if now >= deadline:
            raise RendezvousError(f"rendezvous at {dist_url} timed out after {timeout_s:g} s: ranks {missing} of "
                                  f"{world_size} did not arrive ({advice})")
        if now >= next_report:
            print(f"waiting for ranks {missing} at {dist_url} ({now - start:.0f} s)", file=sys.stderr, flush=True)
            next_report += report_every_s
        time.sleep(min(0.1, max(deadline - now, 0)))
    store.set("complete", "1")
    return store


def _worker(local_rank, main_func, world_size, per_machine, machine_rank, dist_url, args, timeout,
            rendezvous_timeout):
    rank = machine_rank * per_machine + local_rank
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    store = _rendezvous(dist_url, rank, world_size, rendezvous_timeout)
    store.set_timeout(timeout)  # from here on the process group's, as init_process_group's own rendezvous does
    dist.init_process_group(_backend(), store=store, world_size=world_size, rank=rank, timeout=timeout)
    from .errors import USER_ERRORS

    try:
        main_func(*args)
    except USER_ERRORS as error:
        if isinstance(error, RendezvousError):
            raise
        raise WorkerUserError(str(error).replace("\n", " ")) from None
    finally:
        dist.destroy_process_group()


def _child_user_error(error: mp.ProcessRaisedException) -> Exception | None:
    """The RendezvousError or WorkerUserError a spawned process raised (the last line of its traceback), else
    None."""
    lines = str(error).strip().splitlines()
    for kind in (RendezvousError, WorkerUserError):
        prefix = f"{kind.__module__}.{kind.__qualname__}: "
        if lines and lines[-1].startswith(prefix):
            return kind(lines[-1][len(prefix):])
    return None


def launch(main_func: Callable, num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0,
           dist_url: str = "auto", args: tuple = (), timeout: datetime.timedelta = datetime.timedelta(minutes=30),
           rendezvous_timeout: float | None = None):
    """Runs main_func(*args) in num_gpus_per_machine processes on each of num_machines machines.

    num_gpus_per_machine counts GPUs where there are some, CPU worker processes (gloo) where there are none.
    Bad combinations are a ValueError (check_launch). The processes meet at dist_url (tcp://HOST:PORT of machine
    0); when they are not all there within rendezvous_timeout seconds (None: 600)
    launch raises RendezvousError naming the address and the missing ranks. timeout: the process group's, for
    each collective. Under torchrun (RANK and WORLD_SIZE set) it joins the group torchrun describes instead.
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
    check_launch(num_gpus_per_machine, num_machines, machine_rank, dist_url, rendezvous_timeout)
    world_size = num_gpus_per_machine * num_machines
    if world_size == 1:
        return main_func(*args)
    if dist_url == "auto":
        dist_url = f"tcp://127.0.0.1:{_free_port()}"
    # torch logs a warning for each process it terminates after another one failed; the error says what happened
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")
    level = spawn_log.level
    spawn_log.setLevel(logging.ERROR)
    try:
        mp.start_processes(_worker, nprocs=num_gpus_per_machine, start_method="spawn", daemon=False,
                           args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout,
                                 rendezvous_timeout or DEFAULT_RENDEZVOUS_TIMEOUT_S))
    except mp.ProcessRaisedException as error:
        user_error = _child_user_error(error)
        if user_error is None:
            raise
        raise user_error from None
    finally:
        spawn_log.setLevel(level)
