"""Training and evaluation on the engine's Trainer (carafe_engine.Trainer owns the loop, the device, DDP, the output
folder, checkpoints and exact resume): the generator and the PatchGAN discriminator, their Adam optimizers, one
iteration's two steps, the evaluation on the validation pairs, PreciseBN and the sample grids.

One iteration, on a batch of images x with masks M:
  ŷ = G(x, M),  y = (1 - M) ⊙ x + M ⊙ ŷ
  D step (when the adversarial loss is on): BCE of D on x (real) and y (fake) over the patches whose cell holds
    hole pixels, i.e. the discriminator judges the inpainted region only
  G step: L1_HOLE · |ŷ - x| averaged over the hole + L1_VALID · |ŷ - x| averaged outside it
          + ADVERSARIAL · BCE(D(y), real) over the same patches

The averages are over the global batch (the selected elements of every process), so that N processes with
SOLVER.IMS_PER_BATCH B train like one process with B (with MODEL.SYNC_BN, BatchNorm statistics too).
"""

from __future__ import annotations

import tempfile
from functools import cached_property

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, default_collate

from carafe_engine import (PeriodicHook, Sample, Trainer, TrainingSampler, all_reduce_mean,
                           all_reduce_sum, get_world_size, time_steps)

from .config import KIND, VARIANT_LABELS, get_config
from .data import TrainingViews, ValidationPairs, open_source
from .evaluation import evaluate, format_bins, format_metrics
from .modeling import build_discriminator, build_generator, complete, region_weights
from .visualization import image_grid, masked_view


def masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of values over the elements that weights (broadcast to values) selects, in every process together:
    this process's share of the global mean, times the number of processes (DistributedDataParallel averages the
    gradients over the processes, and the engine the logged losses)."""
    weights = weights.expand_as(values)
    total = all_reduce_sum(weights.sum().detach())
    return (values * weights).sum() * get_world_size() / total.clamp_min(1.0)


def patch_loss(logits: torch.Tensor, real: bool, mask: torch.Tensor) -> torch.Tensor:
    """BCE of patch logits against real/fake, averaged over the patches of the inpainted region."""
    loss = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)), reduction="none")
    return masked_mean(loss, region_weights(mask, logits))


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
        norm.running_mean.copy_(all_reduce_mean(norm.running_mean))
        norm.running_var.copy_(all_reduce_mean(norm.running_var))


def validation_set(cfg) -> ValidationPairs:
    data = cfg.DATASETS
    source = open_source(data.VAL, data.VAL_ROOT, split="val", key="DATASETS.VAL")
    return ValidationPairs(source, data.IMAGE_SIZE, data.VAL_MASK_SEED, data.VAL_MASKS_PER_IMAGE,
                           data.VAL_MASKS or None, data.VAL_MAX_IMAGES)


def training_views(cfg, seed: int) -> TrainingViews:
    data = cfg.DATASETS
    source = open_source(data.TRAIN, data.TRAIN_ROOT, split="train", key="DATASETS.TRAIN")
    return TrainingViews(source, data.IMAGE_SIZE, seed, data.MAX_SCALE)


MODEL_KEYS = ("MODEL.UPSAMPLER", "MODEL.CONV", "MODEL.WIDTH")


class InpaintingTrainer(Trainer):
    checkpoint_kind = KIND
    model_keys = MODEL_KEYS  # MODEL.WEIGHTS may hold a generator only: the discriminator is loaded where it is there

    def build_models(self):
        return {"generator": build_generator(self.cfg), "discriminator": build_discriminator(self.cfg)}

    def build_optimizers(self):
        solver = self.cfg.SOLVER
        return {f"optimizer_{name[0]}": torch.optim.Adam(self.models[name].parameters(), lr=solver.BASE_LR,
                                                         betas=tuple(solver.BETAS))
                for name in ("generator", "discriminator")}

    def build_train_data(self):
        views = training_views(self.cfg, self.cfg.SEED)
        self.log(f"training data: {self.cfg.DATASETS.TRAIN} ({len(views)} images), {views.size}x{views.size} views; "
                 f"validation: {len(self.val_set)} pairs")  # a bad DATASETS.VAL fails now, not after training
        return views, None

    def describe(self) -> str:
        return f"a {self.cfg.MODEL.UPSAMPLER}/{self.cfg.MODEL.CONV} generator"

    # -- one iteration --------------------------------------------------------------------------------------------

    def run_step(self, batch) -> dict[str, torch.Tensor]:
        image = batch["image"].to(self.device, non_blocking=True)
        mask = batch["mask"].to(self.device, non_blocking=True)
        return self.step(self.wrapped["generator"], self.wrapped["discriminator"], image, mask, self.iteration)

    def step(self, generator, discriminator, image, mask, iteration: int) -> dict[str, torch.Tensor]:
        loss_cfg = self.cfg.LOSS
        optimizer_g, optimizer_d = self.optimizers["optimizer_g"], self.optimizers["optimizer_d"]
        adversarial = loss_cfg.ADVERSARIAL > 0 and iteration >= loss_cfg.ADVERSARIAL_START_ITER
        prediction = generator(image, mask)
        completed = complete(prediction, image, mask)
        losses = {}
        if adversarial:
            # real and fake in one batch, so the discriminator's BatchNorm sees the same statistics for both
            logits = discriminator(torch.cat([image, completed.detach()]))
            real_logits, fake_logits = logits.chunk(2)
            loss_d = 0.5 * (patch_loss(real_logits, True, mask) + patch_loss(fake_logits, False, mask))
            self.check_losses({"loss_d": loss_d})
            optimizer_d.zero_grad(set_to_none=True)
            loss_d.backward()
            optimizer_d.step()
            losses["loss_d"] = loss_d.detach()
        error = (prediction - image).abs()
        losses["loss_l1_hole"] = masked_mean(error, mask)
        losses["loss_l1_valid"] = masked_mean(error, 1 - mask)
        loss_g = loss_cfg.L1_HOLE * losses["loss_l1_hole"] + loss_cfg.L1_VALID * losses["loss_l1_valid"]
        if adversarial:
            # the bare discriminator, frozen: its DDP wrapper expects one backward per forward and the generator's
            # loss must not leave gradients in it
            bare = self.models["discriminator"]
            bare.requires_grad_(False)
            losses["loss_adv"] = patch_loss(bare(completed), True, mask)
            bare.requires_grad_(True)
            loss_g = loss_g + loss_cfg.ADVERSARIAL * losses["loss_adv"]
        self.check_losses(losses)
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()
        return {name: value.detach() for name, value in losses.items()}

    # -- evaluation, PreciseBN, samples ---------------------------------------------------------------------------

    @cached_property
    def val_set(self) -> ValidationPairs:
        return validation_set(self.cfg)

    def evaluate(self) -> dict:
        return evaluate(self.models["generator"], self.val_set, self.device, self.cfg.TEST.IMS_PER_BATCH,
                        self.cfg.DATALOADER.NUM_WORKERS)

    def summarize(self, results: dict) -> str:
        return (f"{results['pairs']} pairs: model {format_metrics(results['model'])} | masked input "
                f"{format_metrics(results['masked_input'])} | {format_bins(results)}")

    def hooks_for_training(self):
        hooks = [PeriodicHook(self.cfg.VIS.PERIOD, self.write_samples)]
        if self.cfg.TEST.PRECISE_BN.ENABLED:  # before the samples, and (task hooks run first) the evaluation
            hooks.insert(0, PeriodicHook(self.cfg.TEST.EVAL_PERIOD, lambda done: self.precise_bn()))
        return hooks

    def precise_bn(self) -> None:
        """TEST.PRECISE_BN: the generator's BatchNorm statistics recomputed on NUM_ITER training batches of a
        stream of its own (seeded, so the same weights always get the same statistics, whatever the number of
        processes); they are saved with the weights, so --eval-only evaluates them as they were."""
        cfg = self.cfg
        seed = cfg.SEED + 7919
        views = training_views(cfg, seed)
        batches = TrainingSampler(len(views), cfg.SOLVER.IMS_PER_BATCH, seed, cfg.TEST.PRECISE_BN.NUM_ITER,
                                  rank=self.rank, world_size=self.world_size)
        loader = DataLoader(views, batch_sampler=batches, num_workers=cfg.DATALOADER.NUM_WORKERS,
                            generator=torch.Generator().manual_seed(seed))
        recompute_batchnorm_statistics(self.models["generator"], ((b["image"].to(self.device),
                                                                   b["mask"].to(self.device)) for b in loader))

    @torch.no_grad()
    def write_samples(self, done: int) -> None:
        """samples/iter_XXXXXXX.png: one row per fixed validation pair; masked input, prediction ŷ, completed y,
        original."""
        count = min(self.cfg.VIS.NUM_SAMPLES, len(self.val_set))
        if not self.is_main or count == 0:
            return
        batch = default_collate([self.val_set[i] for i in range(count)])
        image, mask = batch["image"].to(self.device), batch["mask"].to(self.device)
        generator = self.models["generator"]
        generator.eval()
        prediction = generator(image, mask)
        generator.train()
        completed = complete(prediction, image, mask)
        rows = [[masked_view(image[i], mask[i]), prediction[i], completed[i], image[i]] for i in range(count)]
        image_grid(rows, self.output_dir / "samples" / f"iter_{done:07d}.png")


def benchmark_config(config: str, device, batch: int, size: tuple[int, int], warmup: int, steps: int) -> dict:
    """Times one full training iteration (generator forward, D step, G step, with the trainer's networks and
    optimizers) of a config on a fixed batch: embedded photographs (views of max(H, W), cropped to H x W) with
    free-form masks, made once, so that data loading is not timed."""
    height, width = size
    with tempfile.TemporaryDirectory() as scratch:  # the trainer's OUTPUT_DIR: nothing is written there
        cfg = get_config(config, ["MODEL.DEVICE", str(device), "DATASETS.IMAGE_SIZE", str(max(size)),
                                  "SOLVER.IMS_PER_BATCH", str(batch), "OUTPUT_DIR", scratch])
        trainer = InpaintingTrainer(cfg)
    views = TrainingViews(open_source("embedded", split="train"), max(size), seed=0)
    samples = default_collate([views[Sample(i % len(views), i, 0)] for i in range(batch)])
    image, mask = (samples[key][..., :height, :width].to(trainer.device) for key in ("image", "mask"))
    trainer.iteration, models = 0, trainer.models
    timing = time_steps(lambda i: trainer.step(models["generator"], models["discriminator"], image, mask, iteration=i),
                        trainer.device, warmup, steps)
    result = {"config": str(config), "variant": VARIANT_LABELS[(cfg.MODEL.UPSAMPLER, cfg.MODEL.CONV)],
              **{k: v for k, v in timing.items() if k != "last"},
              "generator_parameters": sum(p.numel() for p in models["generator"].parameters()),
              "discriminator_parameters": sum(p.numel() for p in models["discriminator"].parameters()),
              "losses": {k: float(v) for k, v in timing["last"].items()}}
    if trainer.device.type == "cuda":
        torch.cuda.empty_cache()
    return result
