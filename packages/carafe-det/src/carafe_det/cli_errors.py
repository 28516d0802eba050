"""Mistakes in what a user gave (a config key, a dataset folder, an image, a checkpoint) end a command with one
line naming the file or key, not a traceback."""

from __future__ import annotations

import sys
from typing import Callable

from carafe_engine import CheckpointError, ConfigError

from .data.coco_folder import DatasetError

USER_ERRORS = (ConfigError, CheckpointError, DatasetError)


def report_user_errors(prog: str, function: Callable[[], int | None]) -> int:
    """function()'s exit status (0 for None); 2 after printing `prog: error: message` for a user error (as
    argparse does for a bad argument: the same status in every package)."""
    try:
        return function() or 0
    except USER_ERRORS as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
