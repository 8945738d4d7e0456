"""``--logger``: which loggers a run writes to, by name or as ``module:Class``."""
from __future__ import annotations

import importlib
from typing import Any

from ..errors import ScorchError
from .base import Logger
from .csv import CSVLogger
from .mlflow_tracker import MLflowTracker
from .tensorboard import TensorBoardLogger
from .wandb_tracker import WandbTracker


def build(spec: str, where: str = "--logger", config: Any = None) -> list[Logger]:
    """The loggers ``spec`` names (``tensorboard,csv``; ``mlflow``, ``wandb``; ``none``; ``module:Class``);
    ``config`` (the TrainConfig) gives the trackers their settings."""
    builtin: dict[str, type[Logger]] = {"tensorboard": TensorBoardLogger, "csv": CSVLogger}
    loggers: list[Logger] = []
    for item in check_spec(spec, where):
        if item in builtin:
            loggers.append(builtin[item]())
            continue
        if item == "mlflow":  # (mlflow and wandb themselves are imported when a run opens them)
            loggers.append(MLflowTracker(getattr(config, "mlflow_uri", None), getattr(config, "mlflow_experiment", None)))
            continue
        if item == "wandb":
            loggers.append(WandbTracker(getattr(config, "wandb_project", None)))
            continue
        module_name, _, class_name = item.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except ImportError as exc:
            raise ScorchError(f"{where} {item}: cannot import {module_name} ({exc})") from exc
        except AttributeError:
            raise ScorchError(f"{where} {item}: {module_name} has no {class_name}") from None
        if not (isinstance(cls, type) and issubclass(cls, Logger)):
            raise ScorchError(f"{where} {item}: {class_name} is not a subclass of scorch.Logger")
        loggers.append(cls())
    return loggers


BUILTIN = ("tensorboard", "csv", "mlflow", "wandb")


def check_spec(spec: str, where: str = "--logger") -> list[str]:
    """The items of a --logger value, checked for form (one line naming what is wrong)."""
    items = [s.strip() for s in spec.split(",")]
    if items == ["none"]:
        return []
    for item in items:
        module_name, colon, class_name = item.partition(":")
        if item in BUILTIN or (colon and module_name and class_name.isidentifier()
                               and all(p.isidentifier() for p in module_name.split("."))):
            continue
        raise ScorchError(f"{where}: {item!r} is not a logger; expected a comma-separated list of "
                          f"{', '.join(BUILTIN)} or module:Class (a scorch.Logger subclass), or none")
    if len(set(items)) != len(items):
        raise ScorchError(f"{where}: {spec!r} names a logger twice")
    return items
