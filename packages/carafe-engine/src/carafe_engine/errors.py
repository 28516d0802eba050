"""User errors: a mistake in what a user gave (a config key, a dataset folder, an image, a checkpoint) ends every
command of the toolkit the same way - one line `prog: error: message` on stderr and exit status 2, as argparse
does for a bad argument - instead of a traceback."""

from __future__ import annotations

import sys
from typing import Callable

from .checkpoint import CheckpointError
from .config import ConfigError
from .distributed import RendezvousError, WorkerUserError


class DatasetError(ValueError):
    """A dataset folder, annotation file, image or mask that is missing or malformed."""


# a rendezvous that timed out: launch arguments that do not fit together across machines; WorkerUserError: one of
# the others, raised in a process that launch spawned
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, CheckpointError, DatasetError, RendezvousError,
                                                WorkerUserError)


def report_user_errors(prog: str, function: Callable[[], int | None]) -> int:
    """function()'s exit status (0 for None); 2 after printing `prog: error: message` for a user error."""
    try:
        return function() or 0
    except USER_ERRORS as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
