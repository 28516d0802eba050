"""The command line every training entrypoint of the toolkit shares (detectron2's conventions)."""

from __future__ import annotations

import argparse
from typing import Callable

from .checkpoint import CheckpointError, check_training_output_dir
from .config import ConfigError


def default_argument_parser(description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default=None, metavar="FILE", help="YAML config (may use _BASE_)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint in the output directory, if there is one")
    parser.add_argument("--eval-only", action="store_true", help="evaluate the model's weights, do not train")
    parser.add_argument("--num-gpus", type=int, default=1,
                        help="processes per machine: GPUs, or CPU workers (gloo) on a machine without GPUs")
    parser.add_argument("--num-machines", type=int, default=1)
    parser.add_argument("--machine-rank", type=int, default=0, help="this machine's rank (0 .. num-machines - 1)")
    parser.add_argument("--dist-url", default="auto", help="tcp://HOST:PORT of machine 0; 'auto' on one machine")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                        help="config overrides, e.g. SOLVER.BASE_LR 0.01 OUTPUT_DIR out/")
    return parser


def load_run_config(parser: argparse.ArgumentParser, prog: str, load: Callable, args: argparse.Namespace):
    """The config of a train / eval run, load(args.config_file, args.opts), with the output folder checked when
    it trains (check_training_output_dir). A user error ends the command with one line on stderr, exit 2."""
    try:
        cfg = load(args.config_file, args.opts)
        if not args.eval_only:
            check_training_output_dir(cfg.OUTPUT_DIR, args.resume)
        return cfg
    except (ConfigError, CheckpointError) as error:
        parser.exit(2, f"{prog}: error: {error}\n")
