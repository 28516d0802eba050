"""Timing of training steps, for the task packages' step benchmarks (baseline vs CARAFE on one GPU)."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch


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
