"""The ``scorch-train`` console script: stop signals are recorded from the first line on
(:mod:`scorch._signals`), then the command is imported and run; an interrupt during the imports is
one line and exit code 130, not a traceback."""
from __future__ import annotations

import os

from . import _signals
from .errors import EXIT_INTERRUPTED


def train() -> None:
    _signals.install()
    try:
        from .cli.train import console_main
    except KeyboardInterrupt:
        os.write(2, b"scorch-train: interrupted (while starting)\n")
        os._exit(EXIT_INTERRUPTED)
    console_main()
