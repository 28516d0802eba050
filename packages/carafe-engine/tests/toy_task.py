"""A small task on the engine's Trainer (regression with a BatchNorm, a random crop per sample), for the tests:
importable by the processes that launch spawns."""

from __future__ import annotations

import torch
from torch import nn

from carafe_engine import Trainer, load_config, sample_rng
from carafe_engine.trainer import PeriodicHook

DEFAULTS = {
    "MODEL": {"DEVICE": "cpu", "WEIGHTS": "", "SYNC_BN": True},
    "SOLVER": {"IMS_PER_BATCH": 4, "BASE_LR": 0.05, "MAX_ITER": 12, "CHECKPOINT_PERIOD": 4, "LOG_PERIOD": 2},
    "DATALOADER": {"NUM_WORKERS": 0},
    "TEST": {"EVAL_PERIOD": 6},
    "OUTPUT_DIR": "",
    "SEED": 3,
}


def toy_config(output_dir, *opts):
    return load_config(DEFAULTS, None, ["OUTPUT_DIR", str(output_dir), *opts])


class Points(torch.utils.data.Dataset):
    def __init__(self, size=20):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(size, 8, generator=generator)
        self.y = self.x @ torch.randn(8, 1, generator=generator)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, sample):
        noise = sample_rng(7, sample.position).normal(size=8).astype("float32") * 0.1
        return self.x[sample.index] + torch.from_numpy(noise), self.y[sample.index]


class ToyTrainer(Trainer):
    checkpoint_kind = "toy"
    figures: list

    def build_models(self):
        return {"model": nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))}

    def build_optimizers(self):
        return {"optimizer": torch.optim.SGD(self.models["model"].parameters(), lr=self.cfg.SOLVER.BASE_LR,
                                             momentum=0.9)}

    def build_train_data(self):
        return Points(), None

    def lr_factor(self, iteration):
        return (1 - iteration / self.max_iter) ** 0.9

    def run_step(self, batch):
        x, y = (t.to(self.device) for t in batch)
        loss = nn.functional.mse_loss(self.wrapped["model"](x), y)
        self.check_losses({"loss": loss})
        self.optimizers["optimizer"].zero_grad()
        loss.backward()
        self.optimizers["optimizer"].step()
        return {"loss": loss}

    def evaluate(self):
        data = Points()
        self.models["model"].eval()
        with torch.no_grad():
            error = nn.functional.mse_loss(self.models["model"](data.x), data.y).item()
        return {"mse": error, "per_point": [0.0]} if self.is_main else None

    def hooks_for_training(self):
        self.figures = []
        return [PeriodicHook(5, self.figures.append)]
