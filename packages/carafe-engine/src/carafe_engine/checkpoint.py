"""Checkpoints: written atomically (a crash never leaves a torn file), read with weights_only=True."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Mapping

import torch

from .config import _at


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or of another model."""


def _file_mode() -> int:
    """The mode a plainly created file gets (0644 under the usual umask 022); mkstemp's files are 0600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path, write: Callable[[IO], Any], binary: bool = False, mode: int | None = None) -> Path:
    """write(handle) into a temp file in path's folder, fsync, then rename over path, with `mode` (default: the
    mode of the folder's other files)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _file_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """torch.save, atomically (write_atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, lambda handle: torch.save(state, handle), binary=True)


def load_problem(error: Exception) -> str:
    """What torch.load's error says, in one line (its weights_only refusal is a page of advice)."""
    text = str(error).strip()
    if text.startswith("Weights only load failed"):
        return "torch.load(weights_only=True) refused it: it is not a file of tensors written by torch.save"
    return text.splitlines()[0] if text else type(error).__name__


def load_checkpoint(path: str | Path, map_location="cpu", kind: str | None = None) -> dict[str, Any]:
    """Loads with weights_only=True. kind: when given, the checkpoint's 'kind' entry must equal it (so that a
    checkpoint of another model or package gives a clear error instead of a wall of missing keys)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means the file is not ours
        raise CheckpointError(f"{path} is not a readable checkpoint: {load_problem(error)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a checkpoint dict")
    if kind is not None and state.get("kind") != kind:
        raise CheckpointError(f"{path} is a checkpoint of {state.get('kind', 'an unknown model')!r}, expected {kind!r}")
    return state


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint named by output_dir/last_checkpoint, if any (written by the trainers after each save)."""
    pointer = Path(output_dir) / "last_checkpoint"
    if not pointer.is_file():
        return None
    target = Path(output_dir) / pointer.read_text().strip()
    return target if target.is_file() else None


def _checkpoint_files(output_dir: Path) -> list[Path]:
    """The folder's model_*.pth, newest first: model_final.pth, then model_<iteration>.pth by iteration."""
    def order(path: Path):
        number = path.stem.removeprefix("model_")
        return (1, 0) if number == "final" else (0, int(number)) if number.isdigit() else (-1, 0)

    return sorted((p for p in output_dir.glob("model_*.pth") if p.is_file()), key=order, reverse=True)


def find_resume_checkpoint(output_dir: str | Path, log=print) -> Path | None:
    """The checkpoint that --resume continues from: the one output_dir/last_checkpoint names; when that file is gone,
    the newest other checkpoint of the folder (said in the log); None when the folder holds no checkpoint at all
    (a fresh start). A last_checkpoint that names a missing file while no other checkpoint exists is a
    CheckpointError: silently starting again would overwrite the run's files."""
    output_dir = Path(output_dir)
    pointer = output_dir / "last_checkpoint"
    named = pointer.read_text().strip() if pointer.is_file() else None
    if named and (output_dir / named).is_file():
        return output_dir / named
    files = _checkpoint_files(output_dir)
    if named:
        if not files:
            raise CheckpointError(f"{pointer} names {named}, which is missing, and {output_dir} holds no other "
                                  "checkpoint: restore the file, or delete last_checkpoint to start again")
        log(f"{pointer} names {named}, which is missing: resuming from the newest checkpoint there, {files[0].name}")
    return files[0] if files else None


def check_training_output_dir(output_dir: str | Path, resume: bool) -> None:
    """Training without --resume into a folder that holds another run's checkpoints would overwrite them: a
    CheckpointError naming the folder and --resume."""
    output_dir = Path(output_dir)
    files = _checkpoint_files(output_dir) if output_dir.is_dir() else []
    if not resume and (files or (output_dir / "last_checkpoint").exists()):
        shown = ", ".join(p.name for p in files[:3]) or "last_checkpoint"
        raise CheckpointError(f"{output_dir} holds the checkpoints of an earlier run ({shown}): pass --resume to "
                              "continue it, or choose another OUTPUT_DIR")


def save_and_point(output_dir: str | Path, name: str, state: dict[str, Any]) -> Path:
    """Saves output_dir/name atomically and records it as the last checkpoint (also atomically)."""
    path = save_checkpoint(Path(output_dir) / name, state)
    write_atomic(Path(output_dir) / "last_checkpoint", lambda handle: handle.write(name))
    return path


def _differences(expected: Mapping, weights: Mapping) -> tuple[list[str], list[str]]:
    """The names of `expected` that `weights` lacks, and those it holds with another shape."""
    missing = [k for k in expected if k not in weights]
    wrong = [k for k in expected if k in weights and tuple(weights[k].shape) != tuple(expected[k].shape)]
    return missing, wrong


def load_model_state(module: torch.nn.Module, state: Mapping, path: str | Path, entry: str = "model",
                     described: tuple[str, ...] = ()) -> None:
    """Loads the checkpoint's `entry` into module, every tensor with its shape. The weights of another model
    (e.g. the baseline's into a CARAFE model) are a CheckpointError naming the file, what the checkpoint's config
    says of the keys in `described` (those that tell the models apart) and the tensors that differ."""
    weights = state.get(entry)
    if not isinstance(weights, Mapping):
        raise CheckpointError(f"{path} holds no {entry!r} weights")
    own = module.state_dict()
    missing, wrong = _differences(own, weights)
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected or wrong:
        config = state.get("config") if isinstance(state.get("config"), Mapping) else {}
        saved = ", ".join(f"{key} {_at(config, key)!r}" for key in described)
        raise CheckpointError(f"{path} holds weights of another model ({saved}): missing {missing[:4]}, unexpected "
                              f"{unexpected[:4]}, wrong shape {wrong[:4]}; use the config it was trained with")
    module.load_state_dict(weights)


def load_pretrained(module: torch.nn.Module, path: str | Path, what: str = "MODEL.BACKBONE.WEIGHTS",
                    ignore: tuple[str, ...] = ("fc.",)) -> None:
    """Loads a pretrained state dict (e.g. torchvision's ImageNet ResNet-50, resnet50-0676ba61.pth; a dict holding
    one under 'state_dict' or 'model' works too; names saved from a DataParallel, all starting 'module.', too) into
    module. Every tensor of the module must be in the file with its shape, and every tensor of the file must be
    used, except those starting with an `ignore` prefix (BatchNorm's num_batches_tracked may be absent); errors
    name the config key or flag (`what`), the file and the tensors."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{what}: file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means it is not a state dict
        raise CheckpointError(f"{what}: {path} is not a readable state dict: {load_problem(error)}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{what}: {path} does not hold a state dict")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    own = module.state_dict()
    expected = {k: v for k, v in own.items() if not k.startswith(ignore) and not k.endswith("num_batches_tracked")}
    missing, wrong = _differences(expected, state)
    unexpected = sorted(k for k in state if k not in own and not k.startswith(ignore)
                        and not k.endswith("num_batches_tracked"))  # FrozenBatchNorm2d has none
    problems = []
    if missing:
        problems.append(f"lacks {len(missing)} tensors (first: {', '.join(sorted(missing)[:5])})")
    if unexpected:
        problems.append(f"has {len(unexpected)} tensors it does not use (first: {', '.join(unexpected[:5])})")
    if wrong:
        shapes = [f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in wrong]
        problems.append(f"has tensors of other shapes: {', '.join(shapes[:5])}")
    if problems:
        raise CheckpointError(f"{what}: {path} does not fit a {type(module).__name__}: {'; '.join(problems)}")
    module.load_state_dict({k: state[k] for k in own if k in state and not k.startswith(ignore)}, strict=False)
