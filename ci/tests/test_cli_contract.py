"""The command-line contract of carafe-engine's README, for every task package's commands as installed: each user
error is one line `prog: error: ...` on stderr and exit status 2, with no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TASKS = ("seg", "inpaint", "det")
BIN = Path(sys.executable).parent


def run(command: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    executable = shutil.which(command, path=str(BIN)) or shutil.which(command)
    if executable is None:
        pytest.fail(f"{command} is not installed (pip install the package)")
    return subprocess.run([executable, *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "PATH": str(BIN)})


def assert_user_error(result: subprocess.CompletedProcess, command: str, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith(f"{command}: error: "), result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


TINY_CONFIG = {"seg": "tiny.yaml", "inpaint": "tiny_carafe", "det": "torchvision/tiny_shapes_mask_rcnn_carafe.yaml"}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("args, fragments", [
    (["--config-file", "no_such_config.yaml"], ["no_such_config.yaml"]),
    (["--config-file", "{tiny}", "SOLVER.BASE_RL", "0.1"], ["SOLVER.BASE_RL", "did you mean SOLVER.BASE_LR"]),
    (["--config-file", "{tiny}", "SOLVER.BASE_LR", "fast"], ["SOLVER.BASE_LR"]),
    (["--config-file", "{tiny}", "--num-machines", "2", "--machine-rank", "2"], ["--machine-rank"]),
    (["--config-file", "{tiny}", "--eval-only", "OUTPUT_DIR", "{tmp}/empty"], ["--eval-only needs MODEL.WEIGHTS"]),
])
def test_train_user_errors(task, args, fragments, tmp_path):
    command = f"carafe-{task}-train"
    args = [a.format(tiny=TINY_CONFIG[task], tmp=tmp_path) for a in args]
    assert_user_error(run(command, *args, cwd=tmp_path), command, *fragments)


@pytest.mark.parametrize("task", TASKS)
def test_train_into_another_runs_folder_needs_resume(task, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model_0000010.pth").write_bytes(b"")
    command = f"carafe-{task}-train"
    result = run(command, "--config-file", TINY_CONFIG[task], "OUTPUT_DIR", str(tmp_path / "run"), cwd=tmp_path)
    assert_user_error(result, command, "--resume", str(tmp_path / "run"))


@pytest.mark.parametrize("task", TASKS)
def test_predict_user_errors(task, tmp_path):
    command = f"carafe-{task}-predict"
    not_a_checkpoint = tmp_path / "model_final.pth"
    not_a_checkpoint.write_text("not a checkpoint")
    image = tmp_path / "image.png"
    image.write_bytes(b"")
    result = run(command, "--weights", str(not_a_checkpoint), "--input", str(image), "--output", str(tmp_path / "o"),
                 cwd=tmp_path)
    assert_user_error(result, command, "model_final.pth")
    result = run(command, "--weights", str(tmp_path / "missing.pth"), "--input", str(image), "--output",
                 str(tmp_path / "o"), cwd=tmp_path)
    assert_user_error(result, command, "missing.pth")


@pytest.mark.parametrize("task", TASKS)
def test_demo_argument_errors(task, tmp_path):
    """The demos (python -m carafe_<task>.demo) follow the contract too."""
    command = f"python -m carafe_{task}.demo"
    result = run(Path(sys.executable).name, "-m", f"carafe_{task}.demo", "--output", cwd=tmp_path)
    assert_user_error(result, command, "--output")
    assert not any(tmp_path.iterdir())
