"""Shared fixtures: a small generated shapes dataset and the tiny config's overrides for short CPU runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# one thread per test process: the 2-core CI machine is shared with subprocesses (and other suites); OpenMP
# threads that wait for a busy core make small convolutions many times slower
torch.set_num_threads(1)
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
PYTHON = sys.executable


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory) -> Path:
    from carafe_det.data.shapes import write_split

    root = tmp_path_factory.mktemp("shapes")
    write_split(root, "train", 48, 96, seed=0)
    write_split(root, "val", 12, 96, seed=1)
    return root


def tiny_opts(root: Path, output: Path, iterations: int) -> list[str]:
    """Overrides that make the tiny shapes config a seconds-long run on the fixture's 96-pixel images."""
    return ["DATASETS.ROOT", str(root), "OUTPUT_DIR", str(output), "SOLVER.MAX_ITER", str(iterations),
            "SOLVER.IMS_PER_BATCH", "4", "SOLVER.WARMUP_ITERS", "2", "SOLVER.LOG_PERIOD", "2",
            "INPUT.MIN_SIZE_TRAIN", "96", "INPUT.MAX_SIZE_TRAIN", "96", "INPUT.MIN_SIZE_TEST", "96",
            "INPUT.MAX_SIZE_TEST", "96"]
