"""scorch: a model file and a dataset file in, a correct, resumable, distributed training run out."""
from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .callbacks import Callback
    from .config import TrainConfig
    from .loggers import Logger
    from .run import LoadedRun, load_run
    from .trainer import RunResult, train
    from .training.run import Run
    from .userfiles import load_dataset_file, load_model_file

# Lazy, so that `import scorch.distributed` in a user file stays cheap: public name -> its module.
_PUBLIC = {
    "TrainConfig": "config",
    "Callback": "callbacks",
    "Logger": "loggers",
    "Run": "training.run",
    "train": "trainer",
    "RunResult": "trainer",
    "load_run": "run",
    "LoadedRun": "run",
    "load_model_file": "userfiles",
    "load_dataset_file": "userfiles",
}


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'scorch' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)


__all__ = ["Callback", "LoadedRun", "Logger", "Run", "RunResult", "TrainConfig", "__version__", "load_dataset_file",
           "load_model_file", "load_run", "train"]
