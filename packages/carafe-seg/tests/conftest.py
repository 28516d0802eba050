"""Shared fixtures: synthetic datasets in the ADEChallengeData2016 layout, the tiny configs, a trained tiny model,
and a way to run the command-line entrypoints in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from carafe_seg.config import load_seg_config
from carafe_seg.data.synthetic import make_synthetic_ade20k

# The tiny models are overhead-bound: one thread is as fast as two on an idle 2-core machine and many times faster
# on a busy one (OpenMP threads spin while waiting for each other).
torch.set_num_threads(1)
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """32 training and 8 validation scenes: enough for the pipeline, too few to learn much."""
    return make_synthetic_ade20k(tmp_path_factory.mktemp("synthetic-small"), train=32, val=8, seed=1)


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory) -> Path:
    """The size the demo and the docs use: 96 training and 24 validation scenes."""
    return make_synthetic_ade20k(tmp_path_factory.mktemp("synthetic-demo"), train=96, val=24, seed=0)


def tiny_config(name: str, root: Path, output: Path, *opts):
    """A shipped tiny config on a dataset root, writing to output."""
    return load_seg_config(name, ["DATASETS.ROOT", str(root), "OUTPUT_DIR", str(output), *map(str, opts)])


def tiny_args(name: str, root: Path, output: Path, *opts) -> list[str]:
    """Command-line arguments of carafe-seg-train for a shipped tiny config."""
    return ["--config-file", name, "DATASETS.ROOT", str(root), "OUTPUT_DIR", str(output), *map(str, opts)]


def run_module(module: str, *args, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """python -m module args..., single-threaded; its output is returned, not printed."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], env=SUBPROCESS_ENV, capture_output=True,
                          text=True, check=check, **kwargs)


@pytest.fixture(scope="session")
def trained_tiny(demo_dataset, tmp_path_factory) -> Path:
    """The output folder of the tiny CARAFE model trained with its shipped config (10 passes over the 96 demo
    scenes, ~110 iterations: about a minute on one CPU core)."""
    from carafe_seg.cli.train import main

    output = tmp_path_factory.mktemp("trained-tiny-carafe")
    main(tiny_args("tiny_carafe.yaml", demo_dataset, output))
    return output
