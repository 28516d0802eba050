"""Progress of long jobs: a periodic log line with speed and ETA (training), tqdm progress bars (evaluation,
prediction over a folder, dataset generation), metrics appended to metrics.jsonl, and JSON files written
atomically."""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterable, TypeVar

from tqdm import tqdm

from .checkpoint import write_atomic
from .distributed import is_main_process

T = TypeVar("T")


def progress_bar(items: Iterable[T], description: str, total: int | None = None, delay: float = 0) -> Iterable[T]:
    """tqdm over items on stderr, from the main process only (other processes iterate silently); with a delay, only
    once the loop has run that many seconds (so that a loop that is usually short, or fails early, prints nothing)."""
    return tqdm(items, desc=description, total=total, disable=not is_main_process(), dynamic_ncols=True,
                leave=False, delay=delay)


def write_json_atomic(path: str | Path, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, lambda handle: json.dump(data, handle, indent=2))


def append_metrics(output_dir: str | Path, record: dict) -> None:
    """Appends one JSON record (a line) to output_dir/metrics.jsonl."""
    path = Path(output_dir) / "metrics.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def read_metrics(output_dir: str | Path) -> list[dict]:
    """The records of output_dir/metrics.jsonl, in order."""
    lines = (Path(output_dir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def plot_training_curves(runs: dict[str, str | Path], path: str | Path, panels: list[tuple[str, str]],
                         title: str = "", log_scale: bool = False) -> None:
    """A PNG with one panel per (metrics key, axis label): the key against the iteration in each run's
    metrics.jsonl (training losses and evaluations alike). matplotlib is imported here (the task packages have
    it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.3), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for name, run in runs.items():
            points = [(record["iteration"], record[key]) for record in read_metrics(run) if key in record]
            if points:
                ax.plot(*zip(*points), marker="o" if len(points) <= 20 else None, markersize=3, label=name)
        ax.set(xlabel="iteration", ylabel=label, yscale="log" if log_scale else "linear")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def truncate_metrics(output_dir: str | Path, iteration: int) -> None:
    """Drops the records of output_dir/metrics.jsonl logged after `iteration` (a run killed past its last
    checkpoint logged them; the resumed run logs those iterations again)."""
    path = Path(output_dir) / "metrics.jsonl"
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("iteration", 0) <= iteration]
    write_atomic(path, lambda handle: handle.writelines(line + "\n" for line in kept), mode=path.stat().st_mode & 0o777)


class ProgressLogger:
    """Call step(iteration, loss=..., lr=...) every iteration (iteration counts from 0); every `every`
    iterations, and at the last one, it prints `iter 120/1000  loss 0.532  lr 0.0100  0.41 s/it  ETA 0:06:01`
    and appends the averages since the last line to output_dir/metrics.jsonl. Only the main process should call
    it (see carafe_engine.distributed.is_main_process)."""

    def __init__(self, total_iters: int, start_iter: int = 0, every: int = 20, output_dir: str | Path | None = None,
                 prefix: str = "", stream=None):
        self.total = total_iters
        self.every = max(1, every)
        self.prefix = f"[{prefix}] " if prefix else ""
        self.output_dir = output_dir
        self.stream = stream or sys.stdout
        self._sums: dict[str, float] = {}
        self._count = 0
        self._last_time = time.perf_counter()
        self._last_iter = start_iter - 1

    def step(self, iteration: int, **scalars: float) -> None:
        for name, value in scalars.items():
            self._sums[name] = self._sums.get(name, 0.0) + float(value)
        self._count += 1
        done = iteration + 1
        if done % self.every and done != self.total:
            return
        now = time.perf_counter()
        seconds_per_iter = (now - self._last_time) / max(1, iteration - self._last_iter)
        self._last_time, self._last_iter = now, iteration
        averages = {name: total / self._count for name, total in self._sums.items()}
        self._sums, self._count = {}, 0
        eta = datetime.timedelta(seconds=round(seconds_per_iter * (self.total - done)))
        values = "  ".join(f"{name} {value:.4g}" for name, value in averages.items())
        print(f"{self.prefix}iter {done}/{self.total}  {values}  {seconds_per_iter:.3f} s/it  ETA {eta}",
              file=self.stream, flush=True)
        if self.output_dir is not None:
            append_metrics(self.output_dir, {"iteration": done, **averages, "seconds_per_iter": seconds_per_iter})
