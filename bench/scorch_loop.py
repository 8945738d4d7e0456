"""scorch in-process: ``python -m bench.scorch_loop SCORCH_TRAIN_ARGS...`` calls
``scorch.cli.train.main(argv)``, exactly what the console script does."""
from __future__ import annotations

import sys

from scorch.cli.train import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
