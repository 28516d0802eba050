"""carafe-seg-train: trains and evaluates UperNet (with or without CARAFE) on ADE20K-layout data.

    carafe-seg-train --config-file upernet_r50_ade20k_carafe.yaml --num-gpus 8 \\
        DATASET.ROOT /data/ADEChallengeData2016 MODEL.BACKBONE.WEIGHTS /weights/resnet50-0676ba61.pth \\
        OUTPUT_DIR output/upernet_r50_carafe
    carafe-seg-train --config-file ... --resume                # continue from OUTPUT_DIR's last checkpoint
    carafe-seg-train --config-file ... --eval-only MODEL.WEIGHTS output/.../model_final.pth

The loop is the official UperNet trainer's (CSAILVision/semantic-segmentation-pytorch): SGD with momentum, weight
decay on conv weights only, the 'poly' learning rate updated every iteration, cross-entropy at 1/4 resolution
with 'other' and padding ignored; DDP over processes (one per GPU, or gloo CPU workers), BatchNorm synchronized.
OUTPUT_DIR receives config.yaml, log.txt, metrics.jsonl (training losses and evaluations), checkpoints
(model_<iter>.pth, model_final.pth, last_checkpoint) and evaluation.json (the latest evaluation, per class).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from carafe_engine import (
    CheckpointError,
    Config,
    ProgressLogger,
    all_reduce_mean,
    append_metrics,
    barrier,
    default_argument_parser,
    find_resume_checkpoint,
    get_rank,
    get_world_size,
    is_main_process,
    launch,
    load_checkpoint,
    load_run_config,
    save_and_point,
    select_device,
    truncate_metrics,
    write_json_atomic,
)
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .config import load_seg_config
from .data.ade20k import class_names, list_samples
from .data.datasets import train_loader
from .data.transforms import IGNORE_INDEX, subsample_targets
from .evaluation import evaluate
from .model import build_model, convert_sync_batchnorm
from .model.segmentor import OUTPUT_STRIDE

CHECKPOINT_KIND = "carafe-seg"


class Tee:
    """A text stream that writes to stdout and appends to a log file."""

    def __init__(self, path: Path):
        self.file = open(path, "a", buffering=1)

    def write(self, text: str) -> None:
        sys.stdout.write(text)
        self.file.write(text)

    def flush(self) -> None:
        sys.stdout.flush()
        self.file.flush()


def segmentation_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over labelled pixels; 0 (with a graph) when a batch has none, instead of NaN."""
    total = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (targets != IGNORE_INDEX).sum().clamp(min=1)


def train_step(network: nn.Module, optimizer, images: torch.Tensor, targets: torch.Tensor,
               label_downsample: int) -> torch.Tensor:
    """One SGD step on a batch: targets at full resolution are subsampled to the logits' 1/4 resolution
    (INPUT.LABEL_DOWNSAMPLE 4) or the logits upsampled to full resolution (1 or 2). Returns the loss."""
    logits = network(images)
    targets = subsample_targets(targets, label_downsample)
    if label_downsample != OUTPUT_STRIDE:
        logits = F.interpolate(logits, scale_factor=OUTPUT_STRIDE // label_downsample, mode="bilinear",
                               align_corners=False)
    if logits.shape[-2:] != targets.shape[-2:]:
        raise ValueError(f"targets {tuple(targets.shape[-2:])} (after subsampling by {label_downsample}) do not match "
                         f"the logits {tuple(logits.shape[-2:])}: pad images and labels to INPUT.SIZE_DIVISIBILITY")
    loss = segmentation_loss(logits, targets)
    if not torch.isfinite(loss):  # before the step, so that the weights stay usable
        raise FloatingPointError(f"loss is {loss.item()}; lower SOLVER.BASE_LR?")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def poly_lr(base_lr: float, iteration: int, max_iter: int, power: float) -> float:
    return base_lr * (1 - iteration / max_iter) ** power


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv (and linear) weights only, not on biases and BatchNorm parameters, as the official
    trainer's group_weight."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def iterations_per_epoch(cfg, batches_per_pass: int) -> int:
    return cfg.SOLVER.ITERS_PER_EPOCH or batches_per_pass


def checkpoint_state(model: nn.Module, optimizer, iteration: int, cfg: Config) -> dict:
    return {"kind": CHECKPOINT_KIND, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "iteration": iteration, "config": cfg.to_dict()}


def load_model_weights(model: nn.Module, path: str | Path) -> dict:
    """Loads a carafe-seg checkpoint's weights into model (returns the checkpoint)."""
    state = load_checkpoint(path, kind=CHECKPOINT_KIND)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        trained = state.get("config", {}).get("MODEL", {})
        raise CheckpointError(
            f"{path} holds weights of another model (backbone {trained.get('BACKBONE', {}).get('NAME')!r}, "
            f"upsamplers {trained.get('UPSAMPLER')}); use the config it was trained with. {error}") from None
    return state


def run_evaluation(model, cfg, device, iteration, out: Path, log, stream) -> dict:
    samples = list_samples(cfg.DATASET.ROOT, cfg.DATASET.TEST_SPLIT)
    names = class_names(cfg.DATASET.ROOT, cfg.DATASET.NUM_CLASSES)
    started = time.perf_counter()
    result = evaluate(model, samples, cfg, device, names, stream=stream)
    if is_main_process():
        result = {"iteration": iteration, "images": len(samples), **result}
        write_json_atomic(out / "evaluation.json", result)
        append_metrics(out, {"iteration": iteration, "mIoU": result["mIoU"], "pixel_accuracy": result["pixel_accuracy"]})
        log(f"evaluation at iteration {iteration} on {len(samples)} images ({cfg.DATASET.TEST_SPLIT}): "
            f"mIoU {result['mIoU']:.2f}  pixel accuracy {result['pixel_accuracy']:.2f}  "
            f"({time.perf_counter() - started:.0f}s)")
    return result


def train_worker(cfg_dict: dict, resume: bool, eval_only: bool) -> dict | None:
    """Runs in every process. Returns the last evaluation's metrics."""
    cfg = Config.wrap(cfg_dict)
    out = Path(cfg.OUTPUT_DIR)
    if not is_main_process():  # only the main process writes the log, the metrics and the checkpoints
        return train_or_evaluate(cfg, resume, eval_only, None, lambda message: None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(cfg.dump())
    stream = Tee(out / "log.txt")
    try:
        return train_or_evaluate(cfg, resume, eval_only, stream, lambda message: print(message, file=stream, flush=True))
    finally:
        stream.file.close()


def evaluate_checkpoint(model, cfg: Config, device, resume: bool, log, stream) -> dict:
    """--eval-only: MODEL.WEIGHTS, or with --resume the last checkpoint in OUTPUT_DIR."""
    out = Path(cfg.OUTPUT_DIR)
    weights = cfg.MODEL.WEIGHTS or (find_resume_checkpoint(out, log) if resume else None)
    if not weights:
        raise ValueError("--eval-only needs MODEL.WEIGHTS (a carafe-seg checkpoint), or --resume with a checkpoint "
                         f"in OUTPUT_DIR ({out})")
    state = load_model_weights(model, weights)
    log(f"evaluating {weights} (iteration {state['iteration']})")
    return run_evaluation(model, cfg, device, state["iteration"], out, log, stream)


def train_or_evaluate(cfg: Config, resume: bool, eval_only: bool, stream, log) -> dict | None:
    rank, world_size = get_rank(), get_world_size()
    device = select_device()  # auto: launch() has made this process's GPU current
    out = Path(cfg.OUTPUT_DIR)

    # the same initial weights in every process (DDP broadcasts rank 0's anyway); the data order is seeded by the
    # sampler, from SEED and the iteration
    torch.manual_seed(cfg.SEED)
    model = build_model(cfg).to(device)

    if eval_only:
        return evaluate_checkpoint(model, cfg, device, resume, log, stream)
    if world_size > 1 and cfg.MODEL.SYNC_BN:
        model = convert_sync_batchnorm(model, device)
    optimizer = torch.optim.SGD(parameter_groups(model, cfg.SOLVER.WEIGHT_DECAY), lr=cfg.SOLVER.BASE_LR,
                                momentum=cfg.SOLVER.MOMENTUM)
    start_iter = 0
    previous = find_resume_checkpoint(out, log) if resume else None
    if previous is not None:
        state = load_model_weights(model, previous)
        optimizer.load_state_dict(state["optimizer"])
        start_iter = state["iteration"]
        log(f"resumed from {previous} at iteration {start_iter}")
        if is_main_process():
            truncate_metrics(out, start_iter)
    elif cfg.MODEL.WEIGHTS:
        load_model_weights(model, cfg.MODEL.WEIGHTS)
        log(f"initialized from {cfg.MODEL.WEIGHTS}")

    samples = list_samples(cfg.DATASET.ROOT, cfg.DATASET.TRAIN_SPLIT)
    loader = train_loader(samples, cfg, rank, world_size, start_iter)
    max_iter = cfg.SOLVER.EPOCHS * iterations_per_epoch(cfg, len(loader.batch_sampler))
    log(f"training {len(samples)} images, {world_size} process(es) on {device.type}, "
        f"{cfg.SOLVER.IMS_PER_BATCH} images per batch, {max_iter} iterations; upsamplers "
        f"{dict(cfg.MODEL.UPSAMPLER)}; {sum(p.numel() for p in model.parameters())} parameters")
    network = model
    if world_size > 1:
        network = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    progress = ProgressLogger(max_iter, start_iter, every=cfg.LOG_PERIOD, output_dir=out, stream=stream) \
        if is_main_process() else None

    network.train()
    result = None
    batches = iter(loader)
    for iteration in range(start_iter, max_iter):
        lr = poly_lr(cfg.SOLVER.BASE_LR, iteration, max_iter, cfg.SOLVER.POLY_POWER)
        for group in optimizer.param_groups:
            group["lr"] = lr
        images, targets = next(batches)
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        try:
            loss = train_step(network, optimizer, images, targets, cfg.INPUT.LABEL_DOWNSAMPLE)
        except FloatingPointError as error:
            raise FloatingPointError(f"iteration {iteration}: {error}") from None
        loss = all_reduce_mean(loss)
        if progress:
            progress.step(iteration, loss=loss.item(), lr=lr)

        done = iteration + 1
        if done % cfg.SOLVER.CHECKPOINT_PERIOD == 0 or done == max_iter:
            name = "model_final.pth" if done == max_iter else f"model_{done:07d}.pth"
            if is_main_process():
                save_and_point(out, name, checkpoint_state(model, optimizer, done, cfg))
            barrier()
        if done == max_iter or (cfg.TEST.EVAL_PERIOD and done % cfg.TEST.EVAL_PERIOD == 0):
            result = run_evaluation(model, cfg, device, done, out, log, stream)
            network.train()
    if start_iter >= max_iter:
        log(f"nothing to train: the last checkpoint is at iteration {start_iter} of {max_iter}")
    return result


def main(argv=None) -> int:
    parser = default_argument_parser("Train or evaluate UperNet with CARAFE on ADE20K (carafe-seg)", epilog=__doc__)
    args = parser.parse_args(argv)
    if args.config_file is None:
        parser.error("--config-file is required (a path, or a shipped config's name: see carafe_seg.shipped_configs())")
    cfg = load_run_config(parser, "carafe-seg-train", load_seg_config, args)
    launch(train_worker, args.num_gpus, args.num_machines, args.machine_rank, args.dist_url,
           args=(cfg.to_dict(), args.resume, args.eval_only))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
