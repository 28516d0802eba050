"""Training infrastructure shared by the CARAFE task packages (see README.md)."""

from .benchmark import time_steps
from .checkpoint import (CheckpointError, check_training_output_dir, find_resume_checkpoint, last_checkpoint,
                         load_checkpoint, load_pretrained, save_and_point, save_checkpoint)
from .cli import CommandLineParser, checkpoint_labels, default_argument_parser, load_run_config, predict_argument_parser
from .config import (CfgNode, ConfigError, add_defaults, config_from_checkpoint, get_cfg, load_config,
                     resolve_config_file, set_choices)
from .distributed import (all_reduce_mean, all_reduce_sum, barrier, get_rank, get_world_size, is_main_process, launch,
                          select_device)
from .errors import USER_ERRORS, DatasetError, report_user_errors
from .progress import (ProgressLogger, append_metrics, plot_training_curves, progress_bar, read_metrics,
                       truncate_metrics, write_json_atomic)
from .sampler import Sample, TrainingSampler, sample_rng
from .sync_batchnorm import CPUSyncBatchNorm, convert_sync_batchnorm
from .trainer import HookBase, PeriodicHook, RunLog, Trainer, epochs_to_iterations, run_trainer, train_command

__all__ = [
    "CPUSyncBatchNorm",
    "DatasetError",
    "HookBase",
    "PeriodicHook",
    "RunLog",
    "Sample",
    "Trainer",
    "TrainingSampler",
    "USER_ERRORS",
    "convert_sync_batchnorm",
    "report_user_errors",
    "run_trainer",
    "CommandLineParser",
    "add_defaults",
    "predict_argument_parser",
    "plot_training_curves",
    "progress_bar",
    "read_metrics",
    "train_command",
    "epochs_to_iterations",
    "sample_rng",
    "CheckpointError",
    "CfgNode",
    "config_from_checkpoint",
    "ConfigError",
    "ProgressLogger",
    "all_reduce_mean",
    "all_reduce_sum",
    "append_metrics",
    "barrier",
    "check_training_output_dir",
    "checkpoint_labels",
    "default_argument_parser",
    "find_resume_checkpoint",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "last_checkpoint",
    "launch",
    "load_checkpoint",
    "get_cfg",
    "load_config",
    "load_pretrained",
    "load_run_config",
    "resolve_config_file",
    "save_and_point",
    "save_checkpoint",
    "select_device",
    "set_choices",
    "time_steps",
    "truncate_metrics",
    "write_json_atomic",
]
