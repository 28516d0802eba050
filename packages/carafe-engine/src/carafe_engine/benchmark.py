"""Timing of training steps, for the task packages' step benchmarks (baseline vs CARAFE on one GPU)."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .cli import CommandLineParser
from .progress import write_json_atomic


def time_steps(step: Callable[[int], Any], device: torch.device | str, warmup: int = 3, steps: int = 10) -> dict:
    """Runs step(i) for i < warmup + steps. Returns the median and every measured step time in seconds (the
    steps after the warm-up, each between device synchronizations), the peak memory in GiB of the measured steps
    (CUDA only, else None), and what the last step returned."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    times, result = [], None
    for i in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize(device)
            if i == warmup:
                torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        result = step(i)
        if cuda:
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return {
        "median_step_s": statistics.median(times),
        "step_times_s": times,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
        "last": result,
    }


def step_benchmark_parser(prog: str, doc: str, configs: Sequence[str], size: tuple[int, int]) -> argparse.ArgumentParser:
    """The arguments the config-driven step benchmarks share. doc: the module docstring (first paragraph: the
    description, all of it: the epilog)."""
    parser = CommandLineParser(prog=prog, description=doc.split("\n\n")[0], epilog=doc,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=list(configs), help="config files or shipped config names")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=2, help="images per step (the paper: 2 per GPU)")
    parser.add_argument("--size", type=int, nargs=2, default=tuple(size), metavar=("H", "W"))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the results")
    return parser


def benchmark_device(name: str) -> tuple[torch.device, str]:
    """The device to time on (cuDNN autotuning on for CUDA) and its name for the report."""
    device = torch.device(name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        return device, torch.cuda.get_device_name(device)
    return device, device.type


def report_step_results(args: argparse.Namespace, device_name: str, results: list, label: str,
                        columns: dict[str, str]) -> None:
    """Prints the table of a step_benchmark_parser run (a row per config: results[label], the median step, the
    peak memory, then each of `columns`, {title: result key}) and writes the JSON file of --output."""
    print(f"training step, batch {args.batch} x {args.size[0]}x{args.size[1]}, {device_name}, torch {torch.__version__}")
    width = max(24, *(len(str(r[label])) + 2 for r in results))
    print(f"{label:<{width}}{'step (s)':>10}{'peak GiB':>10}" + "".join(f"{title:>14}" for title in columns))
    for r in results:
        memory = f"{r['peak_memory_gib']:.2f}" if r["peak_memory_gib"] is not None else "-"
        print(f"{r[label]:<{width}}{r['median_step_s']:10.3f}{memory:>10}"
              + "".join(f"{str(r[key]):>14}" for key in columns.values()))
    if args.output:
        write_json_atomic(args.output, {"device": device_name, "torch": torch.__version__, "batch": args.batch,
                                        "size": list(args.size), "results": results})
