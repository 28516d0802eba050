"""What the task packages' demos share: their training runs side by side in child processes (one thread each, so
that two runs take the two cores of a small machine), a Markdown table, and the summary files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .cli import CommandLineParser
from .progress import read_metrics


def demo_argument_parser(task: str, doc: str) -> CommandLineParser:
    """`python -m carafe_<task>.demo`'s command line: --output (default demo_output/carafe-<task>), the task adds
    its own flags; errors are one line and exit status 2, as in every command."""
    parser = CommandLineParser(prog=f"python -m carafe_{task}.demo", description=doc.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path(f"demo_output/carafe-{task}"),
                        help="folder for the metrics, the summary and the figures")
    return parser


def train_side_by_side(module: str, runs: dict[str, list[str]], log_dir: Path) -> None:
    """`python -m module ARGS` for each run at once (OMP_NUM_THREADS=1), each one's output in log_dir/NAME.out and
    echoed line by line with the run's name; SystemExit naming the log of a run that fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = {name: log_dir / f"{name}.out" for name in runs}
    processes = {name: subprocess.Popen([sys.executable, "-m", module, *args], env=env, stdout=open(logs[name], "w"),
                                        stderr=subprocess.STDOUT) for name, args in runs.items()}
    offsets = dict.fromkeys(runs, 0)
    while True:
        finished = all(process.poll() is not None for process in processes.values())
        for name in runs:
            for line in logs[name].read_text()[offsets[name]:].splitlines(keepends=True):
                if not (line.endswith("\n") or finished):
                    break
                offsets[name] += len(line)
                text = line.rstrip().rpartition("\r")[2].strip()  # a progress bar's last state
                if text:
                    print(f"[{name}] {text}", flush=True)
        if finished:
            break
        time.sleep(1)
    failed = {name: process.returncode for name, process in processes.items() if process.returncode}
    if failed:
        raise SystemExit(f"training failed: {failed}; see {', '.join(str(logs[name]) for name in failed)}")


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """The lines of a Markdown table (cells as given, str() of anything else)."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


def write_summary(output: Path, metrics: dict, lines: list[str]) -> None:
    """output/metrics.json and output/summary.md."""
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (output / "summary.md").write_text("\n".join(lines) + "\n")


def training_seconds(run_dir: Path) -> float:
    """The time a run spent in training steps (evaluations and checkpoints left out), from its metrics.jsonl."""
    seconds, previous = 0.0, 0
    for record in read_metrics(run_dir):
        if "seconds_per_iter" in record:
            seconds += record["seconds_per_iter"] * (record["iteration"] - previous)
            previous = record["iteration"]
    return seconds
