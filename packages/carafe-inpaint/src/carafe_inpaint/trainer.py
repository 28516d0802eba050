"""Training and evaluation: the generator and the PatchGAN discriminator, their Adam optimizers, the losses, periodic
checkpoints, evaluation and sample grids. Runs in one process or in each process of a torch.distributed group
(DistributedDataParallel on both networks; each process takes its slots of every global batch).

One iteration, on a batch of images x with masks M:
  ŷ = G(x, M),  y = (1 - M) ⊙ x + M ⊙ ŷ
  D step (when the adversarial loss is on): BCE of D on x (real) and y (fake) over the patches whose cell holds
    hole pixels, i.e. the discriminator judges the inpainted region only
  G step: L1_HOLE · |ŷ - x| averaged over the hole + L1_VALID · |ŷ - x| averaged outside it
          + ADVERSARIAL · BCE(D(y), real) over the same patches
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from carafe_engine import (CheckpointError, ProgressLogger, all_reduce_mean, find_resume_checkpoint, get_rank,
                           get_world_size, is_main_process, load_checkpoint, save_and_point, select_device,
                           truncate_metrics, write_json_atomic)

from .config import KIND
from .data import StreamBatches, TrainingStream, ValidationPairs, open_source
from .figures import image_grid, masked_view
from .metrics import evaluate, format_metrics
from .models import build_discriminator, build_generator, complete, region_weights


def masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of values over the elements that weights (broadcast to values) selects."""
    weights = weights.expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def patch_loss(logits: torch.Tensor, real: bool, mask: torch.Tensor) -> torch.Tensor:
    """BCE of patch logits against real/fake, averaged over the patches of the inpainted region."""
    target = torch.full_like(logits, 1.0 if real else 0.0)
    return masked_mean(F.binary_cross_entropy_with_logits(logits, target, reduction="none"),
                       region_weights(mask, logits))


@torch.no_grad()
def recompute_batchnorm_statistics(model: torch.nn.Module, batches) -> None:
    """Replaces the running mean and variance of every BatchNorm with their average over `batches` of (image,
    mask) at the current weights (detectron2's PreciseBN), then averages them over the processes. The running
    averages that training keeps lag the weights, which moves the evaluated PSNR by dB when they change fast."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches
    was_training = model.training
    model.train()
    for image, mask in batches:
        model(image, mask)
    model.train(was_training)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
        all_reduce_mean(norm.running_mean)
        all_reduce_mean(norm.running_var)


def validation_set(cfg) -> ValidationPairs:
    source = open_source(cfg.DATA.VAL, cfg.DATA.VAL_ROOT, split="val", key="DATA.VAL")
    return ValidationPairs(source, cfg.DATA.IMAGE_SIZE, cfg.DATA.VAL_MASK_SEED, cfg.DATA.VAL_MASKS_PER_IMAGE,
                           cfg.DATA.VAL_MASKS or None, cfg.DATA.VAL_MAX_IMAGES)


def load_generator_state(generator: torch.nn.Module, state: dict, path) -> None:
    """Loads a checkpoint's generator weights with an error that says which models do not match."""
    try:
        generator.load_state_dict(state["generator"])
    except (KeyError, RuntimeError) as error:
        model = state.get("config", {}).get("MODEL", {})
        saved = f"UPSAMPLER={model.get('UPSAMPLER')}, CONV={model.get('CONV')}, WIDTH={model.get('WIDTH')}"
        raise CheckpointError(f"{path}: its generator ({saved}) does not fit this config's (UPSAMPLER="
                              f"{generator.upsampler}, CONV={generator.conv_type}, WIDTH={generator.width}): "
                              f"{str(error).splitlines()[0]}") from None


class Trainer:
    def __init__(self, cfg, log=print):
        self.cfg = cfg
        self.log = log if is_main_process() else (lambda *a, **k: None)
        self.device = select_device(cfg.DEVICE, "DEVICE")
        self.world_size, self.rank = get_world_size(), get_rank()
        self.output_dir = Path(cfg.OUTPUT_DIR)
        torch.manual_seed(cfg.SEED)  # the same initial weights in every process
        self.generator = build_generator(cfg).to(self.device)
        self.discriminator = build_discriminator(cfg).to(self.device)
        if self.world_size > 1 and self.device.type == "cuda" and cfg.MODEL.SYNC_BN:
            self.generator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.generator)
            self.discriminator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.discriminator)
        betas = tuple(cfg.SOLVER.BETAS)
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.SOLVER.BASE_LR, betas=betas)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.SOLVER.BASE_LR, betas=betas)
        self.start_iter = 0
        self._val_set = None
        self._train_source = None

    # -- weights --------------------------------------------------------------------------------------------------

    def state_dict(self, iteration: int) -> dict:
        return {"kind": KIND, "iteration": iteration, "config": self.cfg.to_dict(),
                "generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict(),
                "optimizer_g": self.optimizer_g.state_dict(), "optimizer_d": self.optimizer_d.state_dict()}

    def load(self, resume: bool) -> None:
        """With resume, continue from the last checkpoint of OUTPUT_DIR if there is one; otherwise start from
        MODEL.WEIGHTS if given (weights only, iteration 0)."""
        path = find_resume_checkpoint(self.output_dir, self.log) if resume else None
        if path is not None:
            state = load_checkpoint(path, map_location=self.device, kind=KIND)
            load_generator_state(self.generator, state, path)
            self.discriminator.load_state_dict(state["discriminator"])
            self.optimizer_g.load_state_dict(state["optimizer_g"])
            self.optimizer_d.load_state_dict(state["optimizer_d"])
            self.start_iter = int(state["iteration"])
            self.log(f"resuming from {path} at iteration {self.start_iter}")
            if is_main_process():
                truncate_metrics(self.output_dir, self.start_iter)
        elif self.cfg.MODEL.WEIGHTS:
            state = load_checkpoint(self.cfg.MODEL.WEIGHTS, map_location=self.device, kind=KIND)
            load_generator_state(self.generator, state, self.cfg.MODEL.WEIGHTS)
            if "discriminator" in state:
                self.discriminator.load_state_dict(state["discriminator"])
            self.log(f"loaded weights from {self.cfg.MODEL.WEIGHTS}")
        elif resume:
            self.log(f"no checkpoint in {self.output_dir}: starting from scratch")

    def save(self, name: str, iteration: int) -> None:
        if is_main_process():
            path = save_and_point(self.output_dir, name, self.state_dict(iteration))
            self.log(f"saved {path}")

    # -- evaluation -----------------------------------------------------------------------------------------------

    @property
    def val_set(self) -> ValidationPairs:
        if self._val_set is None:
            self._val_set = validation_set(self.cfg)
        return self._val_set

    def refresh_batchnorm_statistics(self) -> None:
        """TEST.PRECISE_BN: the generator's BatchNorm statistics recomputed on NUM_ITER training batches of a
        stream of its own (seeded, so every evaluation of the same weights gives the same statistics)."""
        precise = self.cfg.TEST.PRECISE_BN
        if not precise.ENABLED:
            return
        stream = TrainingStream(self.train_source, self.cfg.DATA.IMAGE_SIZE, self.cfg.SEED + 7919,
                                self.cfg.DATA.MAX_SCALE)
        batches = StreamBatches(0, precise.NUM_ITER, self.cfg.SOLVER.IMS_PER_BATCH, self.rank, self.world_size)
        loader = DataLoader(stream, batch_sampler=batches, num_workers=self.cfg.DATA.NUM_WORKERS)
        recompute_batchnorm_statistics(self.generator, ((b["image"].to(self.device), b["mask"].to(self.device))
                                                        for b in loader))

    def evaluate(self, iteration: int) -> dict:
        started = time.perf_counter()
        self.refresh_batchnorm_statistics()
        results = evaluate(self.generator, self.val_set, self.device, self.cfg.TEST.IMS_PER_BATCH,
                           self.cfg.DATA.NUM_WORKERS)
        results["iteration"] = iteration
        self.log(f"eval @ {iteration} on {results['pairs']} pairs ({time.perf_counter() - started:.1f}s): "
                 f"model {format_metrics(results['model'])} | masked input {format_metrics(results['masked_input'])}")
        if is_main_process():
            write_json_atomic(self.output_dir / "eval_results.json", results)
            with open(self.output_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps({"iteration": iteration, "split": "val",
                                         **{f"val_{k}": v for k, v in results["model"].items()}}) + "\n")
        return results

    @torch.no_grad()
    def write_samples(self, iteration: int) -> None:
        """samples/iter_XXXXXXX.png: one row per fixed validation pair; masked input, prediction ŷ, completed y,
        original."""
        if not is_main_process():
            return
        count = min(self.cfg.VIS.NUM_SAMPLES, len(self.val_set))
        if count == 0:
            return
        batch = [self.val_set[i] for i in range(count)]
        image = torch.stack([b["image"] for b in batch]).to(self.device)
        mask = torch.stack([b["mask"] for b in batch]).to(self.device)
        self.generator.eval()
        prediction = self.generator(image, mask)
        self.generator.train()
        completed = complete(prediction, image, mask)
        rows = [[masked_view(image[i], mask[i]), prediction[i], completed[i], image[i]] for i in range(count)]
        image_grid(rows, self.output_dir / "samples" / f"iter_{iteration:07d}.png")

    # -- training -------------------------------------------------------------------------------------------------

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.world_size == 1:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

    @property
    def train_source(self):
        if self._train_source is None:
            self._train_source = open_source(self.cfg.DATA.TRAIN, self.cfg.DATA.TRAIN_ROOT, split="train",
                                             key="DATA.TRAIN")
        return self._train_source

    def train_loader(self) -> DataLoader:
        cfg = self.cfg
        source = self.train_source
        stream = TrainingStream(source, cfg.DATA.IMAGE_SIZE, cfg.SEED, cfg.DATA.MAX_SCALE)
        batches = StreamBatches(self.start_iter, cfg.SOLVER.MAX_ITER, cfg.SOLVER.IMS_PER_BATCH, self.rank,
                                self.world_size)
        self.log(f"training data: {cfg.DATA.TRAIN} ({len(source)} images), {cfg.DATA.IMAGE_SIZE}x"
                 f"{cfg.DATA.IMAGE_SIZE} views, batch {cfg.SOLVER.IMS_PER_BATCH} over {self.world_size} process(es)")
        return DataLoader(stream, batch_sampler=batches, num_workers=cfg.DATA.NUM_WORKERS,
                          pin_memory=self.device.type == "cuda", persistent_workers=False)

    def step(self, generator, discriminator, image, mask, iteration: int) -> dict[str, float]:
        loss_cfg = self.cfg.LOSS
        adversarial = loss_cfg.ADVERSARIAL > 0 and iteration >= loss_cfg.ADVERSARIAL_START_ITER
        prediction = generator(image, mask)
        completed = complete(prediction, image, mask)
        losses = {}
        if adversarial:
            # real and fake in one batch, so the discriminator's BatchNorm sees the same statistics for both
            logits = discriminator(torch.cat([image, completed.detach()]))
            real_logits, fake_logits = logits.chunk(2)
            loss_d = 0.5 * (patch_loss(real_logits, True, mask) + patch_loss(fake_logits, False, mask))
            self.optimizer_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.optimizer_d.step()
            losses["loss_d"] = loss_d.detach()
        error = (prediction - image).abs()
        losses["loss_l1_hole"] = masked_mean(error, mask)
        losses["loss_l1_valid"] = masked_mean(error, 1 - mask)
        loss_g = loss_cfg.L1_HOLE * losses["loss_l1_hole"] + loss_cfg.L1_VALID * losses["loss_l1_valid"]
        if adversarial:
            # the bare discriminator, frozen: its DDP wrapper expects one backward per forward and the generator's
            # loss must not leave gradients in it
            bare = self.discriminator
            bare.requires_grad_(False)
            losses["loss_adv"] = patch_loss(bare(completed), True, mask)
            bare.requires_grad_(True)
            loss_g = loss_g + loss_cfg.ADVERSARIAL * losses["loss_adv"]
        self.optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.optimizer_g.step()
        return {name: float(value.detach()) for name, value in losses.items()}

    def train(self) -> dict | None:
        cfg = self.cfg
        if is_main_process():
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.yaml").write_text(cfg.dump())
        if self.start_iter >= cfg.SOLVER.MAX_ITER:
            self.log(f"already trained to iteration {self.start_iter} (SOLVER.MAX_ITER {cfg.SOLVER.MAX_ITER})")
            return None
        self.log(f"validation: {len(self.val_set)} pairs")  # a bad DATA.VAL fails now, not after training
        generator, discriminator = self.wrap(self.generator), self.wrap(self.discriminator)
        generator.train()
        discriminator.train()
        progress = ProgressLogger(cfg.SOLVER.MAX_ITER, self.start_iter, cfg.LOG_PERIOD, self.output_dir,
                                  prefix="carafe-inpaint") if is_main_process() else None
        self.log(f"training {cfg.MODEL.UPSAMPLER}/{cfg.MODEL.CONV} generator from iteration {self.start_iter} to "
                 f"{cfg.SOLVER.MAX_ITER} on {self.device}")
        results = None
        for iteration, batch in enumerate(self.train_loader(), start=self.start_iter):
            image = batch["image"].to(self.device, non_blocking=True)
            mask = batch["mask"].to(self.device, non_blocking=True)
            losses = self.step(generator, discriminator, image, mask, iteration)
            if progress is not None:
                progress.step(iteration, **losses, lr=self.optimizer_g.param_groups[0]["lr"])
            done = iteration + 1
            last = done == cfg.SOLVER.MAX_ITER
            # evaluation first: it may refresh the BatchNorm statistics, which the samples and the checkpoint
            # then include (so that a run resumed from this checkpoint continues exactly like this one)
            if done % cfg.TEST.EVAL_PERIOD == 0 or last:
                results = self.evaluate(done)
            if done % cfg.VIS.PERIOD == 0 or last:
                self.write_samples(done)
            if done % cfg.SOLVER.CHECKPOINT_PERIOD == 0 and not last:
                self.save(f"model_{done:07d}.pth", done)
        self.save("model_final.pth", cfg.SOLVER.MAX_ITER)
        return results


def default_threads(world_size_here: int) -> None:
    """CPU workers of one machine share its cores instead of each taking all of them."""
    if world_size_here > 1 and not torch.cuda.is_available():
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size_here))
