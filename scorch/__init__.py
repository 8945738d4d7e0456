"""scorch: a model file and a dataset file in, a correct, resumable, distributed training run out."""
from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig
    from .run import LoadedRun, load_run
    from .trainer import RunResult, train
    from .userfiles import load_dataset_file, load_model_file


def __getattr__(name: str) -> Any:
    # Lazy, so that `import scorch.distributed` in a user file stays cheap.
    if name == "TrainConfig":
        from .config import TrainConfig

        return TrainConfig
    if name in ("train", "RunResult"):
        from . import trainer

        return getattr(trainer, name)
    if name in ("load_run", "LoadedRun"):
        from . import run

        return getattr(run, name)
    if name in ("load_model_file", "load_dataset_file"):
        from . import userfiles

        return getattr(userfiles, name)
    raise AttributeError(f"module 'scorch' has no attribute {name!r}")


__all__ = ["LoadedRun", "RunResult", "TrainConfig", "__version__", "load_dataset_file", "load_model_file", "load_run", "train"]
