"""The command line every training entrypoint of the toolkit shares (detectron2's conventions)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Sequence

from .checkpoint import CheckpointError, check_training_output_dir
from .config import ConfigError
from .distributed import DEFAULT_RENDEZVOUS_TIMEOUT_S, check_launch


class CommandLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are the contract's: one line `prog: error: message` and exit status 2 (no
    usage block; --help shows it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class LaunchArgumentParser(CommandLineParser):
    """An ArgumentParser whose parse_args also checks --num-gpus, --num-machines, --machine-rank, --dist-url and
    --dist-timeout together (distributed.check_launch), so that every train command refuses a bad combination
    before it starts a process: one line on stderr, exit status 2."""

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        try:
            check_launch(parsed.num_gpus, parsed.num_machines, parsed.machine_rank, parsed.dist_url,
                         parsed.dist_timeout)
        except ValueError as error:
            self.exit(2, f"{self.prog}: error: {error}\n")
        return parsed


def default_argument_parser(description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    parser = LaunchArgumentParser(description=description, epilog=epilog,
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
    parser.add_argument("--dist-timeout", type=float, default=None, metavar="SECONDS",
                        help=f"how long the processes wait for each other at --dist-url (default: "
                             f"{DEFAULT_RENDEZVOUS_TIMEOUT_S:g})")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                        help="config overrides, e.g. SOLVER.BASE_LR 0.01 OUTPUT_DIR out/")
    return parser


def predict_argument_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """The flags every predict command shares. doc: the module docstring (its first paragraph is the description,
    all of it the epilog)."""
    parser = PredictArgumentParser(prog=prog, description=doc.split("\n\n")[0], epilog=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="+", required=True, type=Path, metavar="CHECKPOINT",
                        help="one or more checkpoints (model_final.pth of a training run); two: baseline, CARAFE")
    parser.add_argument("--input", nargs="+", required=True, type=Path, help="images or folders of images")
    parser.add_argument("--output", required=True, type=Path, help="folder for the results and the figure")
    parser.add_argument("--titles", nargs="+", default=None, help="a title per checkpoint (default: its kind)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many images (0: all)")
    parser.add_argument("--device", default="auto", help="auto (a GPU where there is one), cpu, cuda or cuda:N")
    return parser


class PredictArgumentParser(CommandLineParser):
    """Checks the predict flags together: a title per checkpoint, a limit >= 0."""

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if parsed.titles and len(parsed.titles) != len(parsed.weights):
            self.error(f"--titles: {len(parsed.titles)} titles for {len(parsed.weights)} checkpoints")
        if parsed.limit < 0:
            self.error(f"--limit must be >= 0, got {parsed.limit}")
        return parsed


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


def checkpoint_labels(paths: Sequence[str | Path]) -> list[str]:
    """Names that tell checkpoints apart, for titles and file names: each one's folder (a training run's
    OUTPUT_DIR), or as many trailing folders and the file's stem as it takes to make them differ
    (out/a/model_final.pth and out/b/model_final.pth: 'a' and 'b'; two of one run: 'run/model_0000050' and
    'run/model_final'); the same file given twice is numbered."""
    resolved = [Path(p).resolve() for p in paths]
    depth = max((len(p.parts) for p in resolved), default=1)
    for level in range(depth):
        labels = ([p.parent.name or p.stem for p in resolved] if level == 0
                  else ["/".join([*p.parent.parts[-level:], p.stem]) for p in resolved])
        if len(set(labels)) == len(labels):
            return labels
    return [f"{label} ({i + 1})" for i, label in enumerate(labels)]
