"""The training runtime of every task package, in the manner of detectron2's SimpleTrainer / DefaultTrainer.

The engine owns what is the same in every task: the device (MODEL.DEVICE), the process group's work (SyncBatchNorm
by MODEL.SYNC_BN, the CPU variant included; DistributedDataParallel; losses averaged for the log), the output
folder (config.yaml, log.txt, metrics.jsonl, eval.json, model_XXXXXXX.pth, model_final.pth, last_checkpoint),
the learning rate of every iteration, the log line with ETA (SOLVER.LOG_PERIOD), the periodic checkpoint
(SOLVER.CHECKPOINT_PERIOD) and evaluation (TEST.EVAL_PERIOD, and always at the end), and exact resume: model and
optimizer states, every random generator of every process, and the data stream's position (the iteration:
see carafe_engine.sampler).

A task subclasses Trainer and supplies:

    checkpoint_kind                  what its checkpoints are (load_checkpoint refuses other kinds)
    build_models()                   {name: module}: the names are the checkpoint's keys ("model"; "generator", ...)
    build_optimizers()               {name: optimizer} over self.models ("optimizer"; "optimizer_g", ...)
    build_train_data()               (dataset, group_ids or None): the sampler draws indices of it
    run_step(batch)                  one training step (forward, backward, optimizer steps); returns its losses
    evaluate()                       the metrics on the test data (called in every process; None off the main one)
    and optionally lr_factor(iteration), max_iter_for(batches_per_epoch), collate, hooks() (e.g. figures, PreciseBN),
    describe(), summarize(results), extra_state() / load_extra_state(state), model_keys (the config keys
    that tell its models apart, named when another model's checkpoint is refused) or load_model_weights(state, path).
"""

from __future__ import annotations

import math
import os
import random
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from .checkpoint import (check_training_output_dir, find_resume_checkpoint, load_checkpoint, load_model_state,
                         save_and_point)
from .cli import default_argument_parser, load_run_config
from .config import ConfigError
from .distributed import all_reduce_mean, barrier, get_rank, get_world_size, launch, select_device
from .errors import report_user_errors
from .progress import ProgressLogger, append_metrics, truncate_metrics, write_json_atomic
from .sampler import TrainingSampler
from .sync_batchnorm import convert_sync_batchnorm


class RunLog:
    """Lines to stdout and OUTPUT_DIR/log.txt, from the main process only (other processes stay quiet). Also a
    text stream (write/flush), for ProgressLogger."""

    def __init__(self, output_dir: Path | None):
        self.path = None if output_dir is None else Path(output_dir) / "log.txt"

    def __call__(self, message: str) -> None:
        self.write(message + "\n")

    def write(self, text: str) -> None:
        if self.path is None:
            return
        sys.stdout.write(text)
        sys.stdout.flush()
        with open(self.path, "a") as handle:
            handle.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


class HookBase:
    """Runs after every training step (after the log line, before the evaluation and the checkpoint of that
    iteration). `done` counts the iterations trained so far."""

    trainer: "Trainer"

    def after_step(self, done: int) -> None:
        pass


class PeriodicHook(HookBase):
    """function(done) every `period` iterations (0: never) and at the last one."""

    def __init__(self, period: int, function: Callable[[int], Any]):
        self.period, self.function = period, function

    def after_step(self, done: int) -> None:
        if due(self.period, done, self.trainer.max_iter):
            self.function(done)


def due(period: int, done: int, last: int) -> bool:
    return done == last or bool(period and done % period == 0)


def scalar_metrics(results: dict, prefix: str = "") -> dict[str, float]:
    """The numbers of a (nested) results dict, flattened to 'a/b' keys; lists and strings are left out."""
    flat = {}
    for key, value in results.items():
        if isinstance(value, dict):
            flat.update(scalar_metrics(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


def rng_state() -> dict:
    """Every random generator of this process (torch, CUDA, NumPy's global one, Python's), as tensors and ints
    (checkpoints are read with weights_only=True)."""
    _, keys, position, has_gauss, gauss = np.random.get_state()
    version, internal, python_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(keys.astype(np.int64)),
             "numpy_rest": [int(position), int(has_gauss), float(gauss)],
             "python": torch.tensor(internal, dtype=torch.int64), "python_rest": [version, python_gauss]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    position, has_gauss, gauss = state["numpy_rest"]
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), int(position), int(has_gauss), gauss))
    version, python_gauss = state["python_rest"]
    random.setstate((version, tuple(state["python"].tolist()), python_gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class Trainer:
    checkpoint_kind = "carafe"

    def __init__(self, cfg):
        self.cfg = cfg
        self.output_dir = Path(cfg.OUTPUT_DIR)
        self.rank, self.world_size = get_rank(), get_world_size()
        self.is_main = self.rank == 0
        self.device = select_device(cfg.MODEL.DEVICE, "MODEL.DEVICE")
        if self.is_main:
            try:
                self.output_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ConfigError(f"OUTPUT_DIR {self.output_dir} cannot be created: {error.strerror}") from None
        self.log = RunLog(self.output_dir if self.is_main else None)
        local = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size))
        if local > 1 and not torch.cuda.is_available():  # CPU workers of one machine share its cores
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
        seed_everything(cfg.SEED)  # the same initial weights in every process (DDP broadcasts rank 0's anyway)
        self.models: dict[str, nn.Module] = {name: module.to(self.device)
                                             for name, module in self.build_models().items()}
        if self.world_size > 1 and cfg.MODEL.get("SYNC_BN", False):
            self.models = {name: convert_sync_batchnorm(module, self.device) for name, module in self.models.items()}
        self.optimizers: dict[str, torch.optim.Optimizer] = self.build_optimizers()
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group.setdefault("base_lr", group["lr"])
        self.wrapped = self.models
        self.start_iter = 0
        self.max_iter = int(cfg.SOLVER.get("MAX_ITER", 0))
        self.hooks: list[HookBase] = []
        # each process its own random stream from here on (proposal sampling, dropout), restored on resume
        seed_everything(cfg.SEED + self.rank)

    # -- what a task supplies ------------------------------------------------------------------------------------

    def build_models(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def build_train_data(self) -> tuple[Any, list[int] | None]:
        raise NotImplementedError

    def run_step(self, batch) -> dict[str, torch.Tensor | float]:
        raise NotImplementedError

    def evaluate(self) -> dict | None:
        raise NotImplementedError

    def lr_factor(self, iteration: int) -> float:
        """The learning rate of `iteration` over SOLVER.BASE_LR (a pure function of the iteration, so that a resumed
        run continues the schedule exactly)."""
        return 1.0

    def max_iter_for(self, batches_per_epoch: int) -> int:
        """The run's length: SOLVER.MAX_ITER (tasks that count epochs override this)."""
        return self.max_iter

    collate = None  # the DataLoader's collate_fn (None: PyTorch's default)

    def hooks_for_training(self) -> list[HookBase]:
        """Task hooks (figures, PreciseBN), run after each step before the evaluation and the checkpoint."""
        return []

    def describe(self) -> str:
        return self.checkpoint_kind

    def summarize(self, results: dict) -> str:
        return "  ".join(f"{k} {v:.4g}" for k, v in scalar_metrics(results).items())

    def extra_state(self) -> dict:
        """Entries of the checkpoint besides the models, the optimizers and the random generators."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    # the config keys that tell this task's models apart, named when a checkpoint of another one is loaded
    model_keys: tuple[str, ...] = ()

    def load_model_weights(self, state: dict, path: str | Path) -> None:
        """Each model's weights from the checkpoint's entry of its name (the first model must be there)."""
        for number, name in enumerate(self.models):
            if number == 0 or name in state:
                load_model_state(self.models[name], state, path, name, self.model_keys)

    # -- checkpoints ----------------------------------------------------------------------------------------------

    def kind(self) -> str:
        return self.checkpoint_kind

    def save(self, name: str, iteration: int) -> None:
        """Every process's random state, then the checkpoint (written by the main process)."""
        states = [rng_state()]
        if self.world_size > 1:
            states = [None] * self.world_size
            dist.all_gather_object(states, rng_state())
        if self.is_main:
            save_and_point(self.output_dir, name, {
                "kind": self.kind(), "iteration": iteration, "config": self.cfg.to_dict(),
                **{key: module.state_dict() for key, module in self.models.items()},
                **{key: optimizer.state_dict() for key, optimizer in self.optimizers.items()},
                "rng_states": states, **self.extra_state()})
        barrier()

    def resume_or_load(self, resume: bool) -> None:
        """detectron2's resume_or_load: with resume, the training state of OUTPUT_DIR's last checkpoint when there
        is one; otherwise the model weights of MODEL.WEIGHTS when given (iteration 0)."""
        check_training_output_dir(self.output_dir, resume)
        path = find_resume_checkpoint(self.output_dir, self.log) if resume else None
        if path is None:
            if self.cfg.MODEL.WEIGHTS:
                state = load_checkpoint(self.cfg.MODEL.WEIGHTS, kind=self.kind())
                self.load_model_weights(state, self.cfg.MODEL.WEIGHTS)
                self.log(f"initialized from {self.cfg.MODEL.WEIGHTS}")
            elif resume:
                self.log(f"no checkpoint in {self.output_dir}: starting from scratch")
            return
        state = load_checkpoint(path, map_location=self.device, kind=self.kind())
        self.load_model_weights(state, path)
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state[name])
        self.load_extra_state(state)
        self.start_iter = int(state["iteration"])
        rng_states = state.get("rng_states") or []
        if len(rng_states) == self.world_size:
            set_rng_state(rng_states[self.rank])
        else:
            self.log(f"{path} was written by {len(rng_states)} process(es), this run has {self.world_size}: the "
                     "random generators restart from SEED (the data stream does not depend on it)")
        self.log(f"resumed from {path} at iteration {self.start_iter}")
        if self.is_main:
            truncate_metrics(self.output_dir, self.start_iter)

    # -- evaluation -----------------------------------------------------------------------------------------------

    def evaluate_and_write(self, iteration: int) -> dict | None:
        """evaluate(), then (main process) eval.json, a metrics.jsonl record and a log line."""
        results = self.evaluate()
        for module in self.wrapped.values():
            module.train()
        if not self.is_main or results is None:
            return results
        write_json_atomic(self.output_dir / "eval.json", {"iteration": iteration, **results})
        append_metrics(self.output_dir, {"iteration": iteration, **scalar_metrics(results)})
        self.log(f"evaluation at iteration {iteration}: {self.summarize(results)}")
        return results

    def test(self, resume: bool) -> dict | None:
        """--eval-only: the weights of MODEL.WEIGHTS, or with --resume of OUTPUT_DIR's last checkpoint, evaluated
        as they are (the statistics they were saved with)."""
        path = self.cfg.MODEL.WEIGHTS or (find_resume_checkpoint(self.output_dir, self.log) if resume else None)
        if not path:
            raise ConfigError(f"--eval-only needs MODEL.WEIGHTS (a {self.kind()} checkpoint), or --resume with a "
                              f"checkpoint in OUTPUT_DIR ({self.output_dir})")
        state = load_checkpoint(path, map_location=self.device, kind=self.kind())
        self.load_model_weights(state, path)
        self.log(f"evaluating {path} (iteration {state.get('iteration', 0)})")
        return self.evaluate_and_write(int(state.get("iteration", 0)))

    # -- training -------------------------------------------------------------------------------------------------

    def build_train_loader(self, dataset, sampler: TrainingSampler) -> DataLoader:
        # a generator of its own: drawing the workers' base seed must not advance the global random stream
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=self.collate,
                          num_workers=self.cfg.DATALOADER.NUM_WORKERS, pin_memory=self.device.type == "cuda",
                          generator=torch.Generator().manual_seed(self.cfg.SEED))

    def set_learning_rates(self, iteration: int) -> float:
        factor = self.lr_factor(iteration)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
        return next(iter(self.optimizers.values())).param_groups[0]["lr"]

    def wrap_for_training(self) -> dict[str, nn.Module]:
        if self.world_size == 1:
            return dict(self.models)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return {name: DistributedDataParallel(module, device_ids=device_ids)
                if any(p.requires_grad for p in module.parameters()) else module
                for name, module in self.models.items()}

    def check_losses(self, losses: dict[str, torch.Tensor]) -> None:
        """A FloatingPointError before the backward pass (so that the weights stay usable) when a loss is not
        finite."""
        if not all(torch.isfinite(torch.as_tensor(v)).all() for v in losses.values()):
            values = {k: float(v) for k, v in losses.items()}
            raise FloatingPointError(f"iteration {self.iteration}: loss is not finite: {values}; lower "
                                     "SOLVER.BASE_LR?")

    def train(self) -> dict | None:
        """Trains from start_iter to the end (evaluating and checkpointing on the way); returns the last
        evaluation's results (on the main process)."""
        cfg = self.cfg
        dataset, group_ids = self.build_train_data()
        sampler = TrainingSampler(len(dataset), cfg.SOLVER.IMS_PER_BATCH, cfg.SEED, max_iter=0,
                                  start_iter=self.start_iter, rank=self.rank, world_size=self.world_size,
                                  group_ids=group_ids)
        self.max_iter = sampler.max_iter = self.max_iter_for(sampler.batches_per_epoch)
        if self.is_main:
            (self.output_dir / "config.yaml").write_text(cfg.dump())
        self.log(f"training {self.describe()} on {self.device} in {self.world_size} process(es): {len(dataset)} "
                 f"images, {cfg.SOLVER.IMS_PER_BATCH} per batch, iterations {self.start_iter}..{self.max_iter}, "
                 f"{sum(p.numel() for m in self.models.values() for p in m.parameters())} parameters")
        if self.start_iter >= self.max_iter:
            self.log(f"already trained to iteration {self.start_iter} of {self.max_iter}: evaluating")
            return self.evaluate_and_write(self.start_iter)
        self.hooks = self.hooks_for_training()
        for hook in self.hooks:
            hook.trainer = self
        self.wrapped = self.wrap_for_training()
        for module in self.wrapped.values():
            module.train()
        progress = ProgressLogger(self.max_iter, self.start_iter, every=cfg.SOLVER.LOG_PERIOD,
                                  output_dir=self.output_dir if self.is_main else None, stream=self.log)
        results = None
        for self.iteration, batch in enumerate(self.build_train_loader(dataset, sampler), start=self.start_iter):
            lr = self.set_learning_rates(self.iteration)
            losses = self.run_step(batch)
            values = all_reduce_mean(torch.stack([torch.as_tensor(value, dtype=torch.float32).detach().cpu()
                                                  for value in losses.values()]))
            if self.is_main:
                progress.step(self.iteration, **dict(zip(losses, values.tolist())), lr=lr)
            done = self.iteration + 1
            for hook in self.hooks:
                hook.after_step(done)
            if due(cfg.TEST.EVAL_PERIOD, done, self.max_iter):
                results = self.evaluate_and_write(done)
            if due(cfg.SOLVER.CHECKPOINT_PERIOD, done, self.max_iter):
                self.save("model_final.pth" if done == self.max_iter else f"model_{done:07d}.pth", done)
        self.wrapped = self.models
        return results


def run_trainer(trainer_class: type[Trainer], cfg, resume: bool, eval_only: bool) -> dict | None:
    """One process's work in a train command (what launch runs in each process)."""
    trainer = trainer_class(cfg)
    if eval_only:
        return trainer.test(resume)
    trainer.resume_or_load(resume)
    return trainer.train()


def train_command(trainer_class: type[Trainer], load: Callable, prog: str, description: str, argv=None,
                  epilog: str | None = None) -> int:
    """A task's carafe-<task>-train: detectron2's command line (default_argument_parser), the config loaded by
    load(config_file, opts) and the output folder checked before any process starts, launch(run_trainer, ...);
    every user error is one line on stderr and exit status 2."""
    parser = default_argument_parser(description, epilog=epilog)
    args = parser.parse_args(argv)
    cfg = load_run_config(parser, prog, load, args)
    return report_user_errors(prog, lambda: launch(run_trainer, args.num_gpus, args.num_machines, args.machine_rank,
                                                   args.dist_url, args=(trainer_class, cfg, args.resume, args.eval_only),
                                                   rendezvous_timeout=args.dist_timeout) and 0)


def epochs_to_iterations(epochs: float, batches_per_epoch: int) -> int:
    return max(1, math.ceil(epochs * batches_per_epoch))
