"""scorch: a model file and a dataset file in, a correct, resumable, distributed training run out."""
from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ._loading import loading
    from .callbacks import Callback
    from .config import TrainConfig
    from .contract.userfiles import load_dataset_file, load_model_file
    from .loggers import Logger
    from .rundir.load_run import LoadedRun, load_run
    from .training.run import Run
    from .training.trainer import RunResult, train

# Lazy, so that `import scorch.distributed` in a user file stays cheap: public name -> its module.
_PUBLIC = {
    "TrainConfig": "config",
    "Callback": "callbacks",
    "Logger": "loggers",
    "Run": "training.run",
    "train": "training.trainer",
    "RunResult": "training.trainer",
    "load_run": "rundir.load_run",
    "LoadedRun": "rundir.load_run",
    "load_model_file": "contract.userfiles",
    "load_dataset_file": "contract.userfiles",
    "loading": "_loading",
}


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'scorch' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)


__all__ = ["Callback", "LoadedRun", "Logger", "Run", "RunResult", "TrainConfig", "__version__", "load_dataset_file",
           "load_model_file", "load_run", "loading", "train"]
