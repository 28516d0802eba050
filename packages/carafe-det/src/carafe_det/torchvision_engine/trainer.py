"""Training and evaluation with the torchvision engine, one process per GPU (or CPU worker): SGD with warmup and
step decay, DistributedDataParallel across processes, checkpoints every SOLVER.CHECKPOINT_PERIOD iterations
that a killed run resumes from exactly, COCO evaluation at TEST.EVAL_PERIOD and at the end.

Output directory: config.yaml, log.txt, metrics.jsonl (losses, lr, speed; evaluations), model_XXXXXXX.pth and
model_final.pth, last_checkpoint, eval.json (the last evaluation)."""

from __future__ import annotations

import bisect
import contextlib
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from carafe_engine import (ConfigError, ProgressLogger, all_reduce_mean, barrier, check_training_output_dir,
                           find_resume_checkpoint, get_rank, get_world_size, is_main_process, load_checkpoint,
                           save_and_point, select_device, truncate_metrics, write_json_atomic)
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..data.coco_folder import DatasetError
from .config import checkpoint_kind, load_torchvision_config
from .data import CocoDetectionDataset, TrainingBatches, collate, iterations_per_epoch
from .evaluate import evaluate
from .model import build_model, load_model_weights, model_state


class Log:
    """Lines to stdout and OUTPUT_DIR/log.txt, from the main process only."""

    def __init__(self, output_dir: Path):
        self.path = output_dir / "log.txt"

    def __call__(self, message: str) -> None:
        if is_main_process():
            print(message, flush=True)
            with open(self.path, "a") as handle:
                handle.write(message + "\n")

    def write(self, text: str) -> None:  # a stream for ProgressLogger
        print(text, end="", flush=True)
        with open(self.path, "a") as handle:
            handle.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def check_classes(cfg, dataset: CocoDetectionDataset, other: CocoDetectionDataset | None = None) -> None:
    """The model's class count fits the dataset, and the test split has the training split's categories."""
    if len(dataset.class_names) != cfg.MODEL.ROI_HEADS.NUM_CLASSES:
        raise ConfigError(f"MODEL.ROI_HEADS.NUM_CLASSES is {cfg.MODEL.ROI_HEADS.NUM_CLASSES} but "
                          f"{dataset.annotation_file} has {len(dataset.class_names)} categories")
    if other is not None and (other.category_ids, other.class_names) != (dataset.category_ids, dataset.class_names):
        raise DatasetError(f"{other.annotation_file} and {dataset.annotation_file} have different categories")


class Schedule:
    """Iterations from epochs, linear warmup, learning rate x GAMMA at each step (epochs in SOLVER.STEPS)."""

    def __init__(self, solver, iters_per_epoch: int):
        self.max_iter = solver.MAX_ITER if solver.MAX_ITER > 0 else max(1, round(solver.EPOCHS * iters_per_epoch))
        self.milestones = sorted(round(epoch * iters_per_epoch) for epoch in solver.STEPS)
        self.base_lr, self.gamma = solver.BASE_LR, solver.GAMMA
        self.warmup_iters, self.warmup_factor = solver.WARMUP_ITERS, solver.WARMUP_FACTOR

    def lr(self, iteration: int) -> float:
        factor = self.gamma ** bisect.bisect_right(self.milestones, iteration)
        if iteration < self.warmup_iters:
            alpha = iteration / self.warmup_iters
            factor *= self.warmup_factor * (1 - alpha) + alpha
        return self.base_lr * factor


def _gather_rng_states() -> list[torch.Tensor]:
    state = torch.get_rng_state()
    if get_world_size() == 1:
        return [state]
    states = [None] * get_world_size()
    dist.all_gather_object(states, state)
    return states


def _training_state(cfg, model, optimizer, scaler, iteration, dataset, rng_states) -> dict:
    return {"kind": checkpoint_kind(cfg), "model": model_state(model), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(), "iteration": iteration, "config": cfg.to_dict(),
            "class_names": dataset.class_names, "category_ids": dataset.category_ids, "rng_states": rng_states}


def load_weights_for(cfg, model: nn.Module, resume: bool, log) -> tuple[dict | None, Path | None, bool]:
    """detectron2's resume_or_load: the output directory's checkpoint to resume when resuming and there is one,
    else MODEL.WEIGHTS, else nothing. Returns the loaded checkpoint, its path and whether it is the run being
    resumed."""
    path = find_resume_checkpoint(cfg.OUTPUT_DIR, log) if resume else None
    resumed = path is not None
    if path is None and cfg.MODEL.WEIGHTS:
        path = Path(cfg.MODEL.WEIGHTS).expanduser()
    if path is None:
        return None, None, False
    state = load_checkpoint(path, kind=checkpoint_kind(cfg))
    load_model_weights(model, state, path)
    log(f"loaded weights from {path} (iteration {state.get('iteration', '?')})")
    return state, path, resumed


def train_step(model, optimizer, scaler, images, targets, device, iteration: int = 0):
    """One SGD step on a batch (what carafe-det-train and the step benchmark run); returns the total loss and
    the loss dict. With an enabled GradScaler (SOLVER.AMP on CUDA) the forward runs in float16 autocast."""
    images = [image.to(device, non_blocking=True) for image in images]
    targets = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]
    autocast = torch.autocast("cuda", dtype=torch.float16) if scaler.is_enabled() else contextlib.nullcontext()
    with autocast:
        loss_dict = model(images, targets)
    loss = sum(loss_dict.values())
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {loss.item()} at iteration {iteration}: "
                                 f"{ {k: v.item() for k, v in loss_dict.items()} }")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss, loss_dict


def build_optimizer(cfg, model: nn.Module):
    """SGD over the trainable parameters, and the GradScaler (enabled by SOLVER.AMP on CUDA)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.SOLVER.BASE_LR, momentum=cfg.SOLVER.MOMENTUM,
                                weight_decay=cfg.SOLVER.WEIGHT_DECAY)
    device_type = next(model.parameters()).device.type
    scaler = torch.amp.GradScaler(device_type, enabled=cfg.SOLVER.AMP and device_type == "cuda")
    return optimizer, scaler


def train(cfg, resume: bool) -> dict | None:
    output_dir = Path(cfg.OUTPUT_DIR)
    check_training_output_dir(output_dir, resume)
    output_dir.mkdir(parents=True, exist_ok=True)
    log = Log(output_dir)
    rank, world_size = get_rank(), get_world_size()
    device = select_device(cfg.MODEL.DEVICE, "MODEL.DEVICE")
    train_set = CocoDetectionDataset(cfg.DATASETS.ROOT, cfg.DATASETS.TRAIN, cfg.MODEL.MASK_ON,
                                     filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS)
    test_set = CocoDetectionDataset(cfg.DATASETS.ROOT, cfg.DATASETS.TEST, cfg.MODEL.MASK_ON)
    check_classes(cfg, train_set, test_set)
    if is_main_process():
        (output_dir / "config.yaml").write_text(cfg.dump())

    torch.manual_seed(cfg.SEED)  # the same initial model in every process (DDP also broadcasts rank 0's)
    model = build_model(cfg).to(device)
    optimizer, scaler = build_optimizer(cfg, model)
    state, path, resumed = load_weights_for(cfg, model, resume, log)
    start_iter = 0
    torch.manual_seed(cfg.SEED + rank)  # proposal sampling differs between processes, as their images do
    if resumed:
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        start_iter = int(state["iteration"])
        rng_states = state.get("rng_states") or []
        if len(rng_states) == world_size:  # same process count: continue each process's random stream exactly
            torch.set_rng_state(rng_states[rank])
        log(f"resuming from {path} at iteration {start_iter}")
        if is_main_process():
            truncate_metrics(output_dir, start_iter)

    schedule = Schedule(cfg.SOLVER, iterations_per_epoch(len(train_set), cfg.SOLVER.IMS_PER_BATCH))
    batches = TrainingBatches(len(train_set), cfg.SOLVER.IMS_PER_BATCH, rank, world_size, cfg.SEED,
                              cfg.INPUT.HFLIP_PROB, start_iter, schedule.max_iter)
    log(f"training {checkpoint_kind(cfg)} (FPN {cfg.MODEL.FPN.UPSAMPLE}/{cfg.MODEL.FPN.TOP_LEVEL}"
        f"{', mask head ' + cfg.MODEL.ROI_MASK_HEAD.UPSAMPLE if cfg.MODEL.MASK_ON else ''}) on {device}, "
        f"{world_size} process(es), {len(train_set)} images, {batches.iters_per_epoch} iterations/epoch, "
        f"iterations {start_iter}..{schedule.max_iter}")
    if start_iter >= schedule.max_iter:
        log("training already finished; evaluating")
    if world_size > 1:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    # a generator of its own: drawing the workers' base seed must not advance the global random stream, which a
    # resumed run restores to continue the proposal sampling exactly
    loader = DataLoader(train_set, batch_sampler=batches, collate_fn=collate,
                        num_workers=cfg.DATALOADER.NUM_WORKERS, generator=torch.Generator().manual_seed(cfg.SEED))
    progress = ProgressLogger(schedule.max_iter, start_iter, every=cfg.SOLVER.LOG_PERIOD,
                              output_dir=output_dir if is_main_process() else None, stream=log)
    model.train()
    for iteration, (images, targets) in enumerate(loader, start=start_iter):
        lr = schedule.lr(iteration)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, loss_dict = train_step(model, optimizer, scaler, images, targets, device, iteration)
        logged = all_reduce_mean(torch.stack([loss.detach()] + [v.detach() for v in loss_dict.values()]).float())
        if is_main_process():
            progress.step(iteration, loss=logged[0].item(),
                          **{k: v.item() for k, v in zip(loss_dict, logged[1:])}, lr=lr)
        done = iteration + 1
        if done % cfg.SOLVER.CHECKPOINT_PERIOD == 0 or done == schedule.max_iter:
            name = "model_final.pth" if done == schedule.max_iter else f"model_{done:07d}.pth"
            rng_states = _gather_rng_states()
            if is_main_process():
                save_and_point(output_dir, name, _training_state(cfg, model, optimizer, scaler, done, train_set,
                                                                 rng_states))
            barrier()
        if cfg.TEST.EVAL_PERIOD > 0 and done % cfg.TEST.EVAL_PERIOD == 0 and done != schedule.max_iter:
            run_evaluation(cfg, model, test_set, device, done, log, progress)
            model.train()
    return run_evaluation(cfg, model, test_set, device, max(start_iter, schedule.max_iter), log, progress)


def run_evaluation(cfg, model, dataset, device, iteration, log, progress=None) -> dict | None:
    started = time.perf_counter()
    metrics = evaluate(getattr(model, "module", model), dataset, device, cfg.MODEL.MASK_ON)
    if not is_main_process():
        return None
    record = {"iteration": iteration, **{f"{kind}/{name}": value for kind, values in metrics.items()
                                          for name, value in values.items()}}
    write_json_atomic(Path(cfg.OUTPUT_DIR) / "eval.json", {"iteration": iteration, "dataset": dataset.image_dir.name,
                                                           "images": len(dataset), **metrics})
    if progress is not None:
        progress.log_metrics(record)
    log(format_metrics(metrics, f"evaluation on {dataset.annotation_file.name} ({len(dataset)} images, "
                                f"{time.perf_counter() - started:.0f}s)"))
    return metrics


def format_metrics(metrics: dict, title: str) -> str:
    lines = [title, f"{'':6}" + "".join(f"{name:>8}" for name in ("AP", "AP50", "AP75", "APs", "APm", "APl"))]
    for kind, values in metrics.items():
        lines.append(f"{kind:6}" + "".join(f"{v:8.2f}" if v is not None else f"{'-':>8}" for v in values.values()))
    return "\n".join(lines)


def evaluate_only(cfg, resume: bool) -> dict | None:
    output_dir = Path(cfg.OUTPUT_DIR)
    output_dir.mkdir(parents=True, exist_ok=True)
    log = Log(output_dir)
    device = select_device(cfg.MODEL.DEVICE, "MODEL.DEVICE")
    dataset = CocoDetectionDataset(cfg.DATASETS.ROOT, cfg.DATASETS.TEST, cfg.MODEL.MASK_ON)
    check_classes(cfg, dataset)
    torch.manual_seed(cfg.SEED)
    model = build_model(cfg).to(device)
    state, _, _ = load_weights_for(cfg, model, resume, log)
    if state is None:
        log("no MODEL.WEIGHTS and no checkpoint to resume: evaluating the untrained model")
    return run_evaluation(cfg, model, dataset, device, int(state.get("iteration", 0)) if state else 0, log)


def main(args) -> dict | None:
    """One process of carafe-det-train --engine torchvision (what carafe_engine.launch runs)."""
    cfg = load_torchvision_config(args.config_file, args.opts)
    if args.eval_only:
        return evaluate_only(cfg, args.resume)
    return train(cfg, args.resume)


__all__ = ["Schedule", "build_optimizer", "evaluate_only", "format_metrics", "main", "train", "train_step"]
