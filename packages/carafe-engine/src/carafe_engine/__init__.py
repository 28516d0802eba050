"""Training infrastructure shared by the CARAFE task packages (see README.md)."""

from .benchmark import time_steps
from .checkpoint import (CheckpointError, check_training_output_dir, find_resume_checkpoint, last_checkpoint,
                         load_checkpoint, load_model_state, load_pretrained, save_and_point, save_checkpoint)
from .cli import CommandLineParser, checkpoint_labels, default_argument_parser, load_run_config, predict_argument_parser
from .config import (POSITIVE, CfgNode, ConfigError, add_defaults, check_values, config_from_checkpoint, get_cfg,
                     load_config, resolve_config_file, set_choices)
from .distributed import (all_reduce_mean, all_reduce_sum, barrier, get_rank, get_world_size, is_main_process, launch,
                          select_device)
from .errors import USER_ERRORS, DatasetError, report_user_errors
from .images import IMAGE_SUFFIXES, list_images, read_image
from .progress import (ProgressLogger, append_metrics, plot_training_curves, progress_bar, read_metrics,
                       truncate_metrics, write_json_atomic)
from .sampler import Sample, TrainingSampler, sample_rng
from .sync_batchnorm import CPUSyncBatchNorm, convert_sync_batchnorm
from .trainer import HookBase, PeriodicHook, RunLog, Trainer, epochs_to_iterations, run_trainer, train_command

__all__ = [
    "add_defaults", "all_reduce_mean", "all_reduce_sum", "append_metrics", "barrier", "CfgNode",
    "check_training_output_dir", "check_values", "checkpoint_labels", "CheckpointError", "CommandLineParser",
    "config_from_checkpoint", "ConfigError", "convert_sync_batchnorm", "CPUSyncBatchNorm", "DatasetError",
    "default_argument_parser", "epochs_to_iterations", "find_resume_checkpoint", "get_cfg", "get_rank",
    "get_world_size", "HookBase", "IMAGE_SUFFIXES", "is_main_process", "last_checkpoint", "launch", "list_images",
    "load_checkpoint", "load_config", "load_model_state", "load_pretrained", "load_run_config", "PeriodicHook",
    "plot_training_curves", "POSITIVE", "predict_argument_parser", "progress_bar", "ProgressLogger", "read_image",
    "read_metrics", "report_user_errors", "resolve_config_file", "run_trainer", "RunLog", "Sample", "sample_rng",
    "save_and_point", "save_checkpoint", "select_device", "set_choices", "time_steps", "train_command", "Trainer",
    "TrainingSampler", "truncate_metrics", "USER_ERRORS", "write_json_atomic",
]
