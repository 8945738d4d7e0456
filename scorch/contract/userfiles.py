"""Load a MODEL_FILE and a DATASET_FILE and check they keep the contract.

MODEL_FILE:   ``Network(torch.nn.Module)`` whose ``forward`` takes a list of tensors and
              returns a list; ``Socket(model)`` with ``criterion``, ``metrics`` and
              ``trainable_modules``; optional ``Socket.optimizer(params)``,
              ``Socket.scheduler(optimizer)``, ``Socket.split_metrics(preds, targets)`` and
              ``Socket.visualize(inputs, preds, targets)``; a custom step's ``Socket.optimizers()``
              and ``Socket.training_step(batch, step)`` (:mod:`scorch.training.custom_step`). The original scorch's spelling is
              accepted as written: ``train_modules``, and ``optimizer``/``scheduler`` as instances
              built in ``Socket.__init__``.
DATASET_FILE: ``DataSet(ds_index, mode)`` with ``__len__`` and ``__getitem__`` returning
              ``(list_of_inputs, list_of_targets)``; optional ``DataSetIndex(path)``.

Every check raises :class:`ScorchError` with one line naming the file, class and method.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import logging
import math
import numbers
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch

from ..callbacks.base import Callback
from ..errors import ScorchError
from ..loggers.base import Logger
from ..training.run import Run
from . import nearest

log = logging.getLogger(__name__)

MODES = ("train", "valid", "test")


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


USER_MODULES: dict[str, tuple[str, str]] = {}
"""The user's files imported in this process: synthetic module name -> (absolute path, role). A
DataLoader worker started by ``spawn`` or ``forkserver`` imports them again from these paths before it
unpickles the dataset (:func:`import_user_modules`, called by :class:`scorch.data.SeededItems`)."""


def module_name(path: str, role: str) -> str:
    """The synthetic module name of the user's file at ``path``: ``scorch_user_ROLE_HASH``, the hash of
    its resolved path. Each file has its own (two model files loaded in one process, by two
    ``load_run`` say, do not replace each other's classes), and a worker that imports the file again
    by the same path gets the same name (so that pickling finds its classes there too)."""
    digest = hashlib.sha256(os.path.realpath(path).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"scorch_user_{role}_{digest}"


def import_file(path: str, role: str) -> ModuleType:
    """Import a user's Python file by path; ``role`` is "model" or "dataset". The module is registered
    under :func:`module_name` (so that pickling finds its classes) and recorded in :data:`USER_MODULES`."""
    return _import_as(module_name(path, role), path, role)


def _import_as(name: str, path: str, role: str) -> ModuleType:
    if not os.path.isfile(path):
        found = "is a directory" if os.path.isdir(path) else "file not found"
        raise ScorchError(f"--{role}: {found}: {path!r} (expected a Python file)")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ScorchError(f"--{role}: {path} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # lets pickling (DataLoader workers) find the classes
    try:
        spec.loader.exec_module(module)
    except SystemExit as exc:  # a script's exit(): nothing would train, and nothing would say why
        raise ScorchError(f"{path}: importing the {role} file called sys.exit({exc.code!r}); expected a file that "
                          "only defines things (put script code under if __name__ == '__main__':)") from exc
    except Exception as exc:
        raise ScorchError(f"{path}: importing the {role} file failed: {type(exc).__name__}: {exc}") from exc
    USER_MODULES[name] = (os.path.abspath(path), role)
    return module


def import_user_modules(modules: dict[str, tuple[str, str]]) -> None:
    """In a process that did not inherit them (a ``spawn``/``forkserver`` worker): import each user file
    of ``modules`` (:data:`USER_MODULES` of the parent) under its synthetic name, unless it is there."""
    for name, (path, role) in modules.items():
        if name not in sys.modules:
            _import_as(name, path, role)


def call_user(where: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call user code; an exception becomes one line naming ``where``."""
    try:
        return fn(*args)
    except ScorchError:
        raise
    except (Exception, SystemExit) as exc:
        raise ScorchError(f"{where} raised {type(exc).__name__}: {exc}") from exc


def declared_settings(module: ModuleType | None, cls: type[object], skip: int) -> dict[str, Any] | None:
    """Settings a user file declares: a module-level ``CONFIG`` dict (``module`` given), else the
    keyword arguments (with defaults) of ``cls.__init__`` after ``skip`` positional ones. None: it
    takes ``**kwargs``."""
    config = getattr(module, "CONFIG", None) if module is not None else None
    if isinstance(config, dict):
        return dict(config)
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1 + skip:]
    except (TypeError, ValueError):
        return {}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name: p.default for p in params if p.default is not p.empty and p.kind is not p.VAR_POSITIONAL}


def resolve_settings(declared: dict[str, Any] | None, given: dict[str, Any], prefix: str, where: str) -> dict[str, Any]:
    """Declared defaults updated by ``given``; unknown names and mismatched types are errors."""
    if declared is None:
        return dict(given)
    for name, value in given.items():
        if name not in declared:
            raise ScorchError(f"--set {prefix}.{name}: unknown setting of {where}; "
                              + nearest.hint(name, declared, prefix=f"{prefix}."))
        default = declared[name]
        if default is not None and value is not None and not _same_kind(default, value):
            raise ScorchError(
                f"--set {prefix}.{name}={value!r}: expected a {type(default).__name__} like the default {default!r} in {where}"
            )
    # A default that is no literal (a class, a module, a function) cannot be written to config.json and
    # read back: the constructor keeps its own, and only what was given is passed.
    return {**{k: v for k, v in declared.items() if is_literal(v)}, **given}


def is_literal(value: Any) -> bool:
    """None, a bool, number or str, or a list, tuple or str-keyed dict of them: what config.json holds."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_literal(v) for k, v in value.items())
    return False


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, numbers.Real) and isinstance(value, numbers.Real):
        return isinstance(value, int) or isinstance(default, float)
    if isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
        return True
    return isinstance(value, type(default))


@dataclass
class ModelFile:
    path: str
    module: ModuleType
    network_cls: type
    socket_cls: type

    def settings(self, given: dict[str, Any]) -> dict[str, Any]:
        """The Network's settings: declared defaults with ``--set model.NAME`` applied."""
        return resolve_settings(declared_settings(self.module, self.network_cls, 0), given, "model", f"{self.path}: Network")

    def build_network(self, settings: dict[str, Any] | None = None) -> torch.nn.Module:
        settings = settings or {}
        net = call_user(f"{self.path}: Network.__init__", lambda: self.network_cls(**settings))
        if not isinstance(net, torch.nn.Module):
            raise ScorchError(f"{self.path}: Network() built a {type(net).__name__}, expected a torch.nn.Module")
        return net

    def socket_declared(self) -> dict[str, Any] | None:
        """``socket.NAME`` settings: the keyword arguments of ``Socket.__init__`` after the model."""
        return declared_settings(None, self.socket_cls, 1)

    def socket_settings(self, given: dict[str, Any]) -> dict[str, Any]:
        """The Socket's settings: declared defaults with ``--set socket.NAME`` applied."""
        return resolve_settings(self.socket_declared(), given, "socket", f"{self.path}: Socket")

    def build_socket(self, network: torch.nn.Module, settings: dict[str, Any] | None = None) -> Socket:
        kw = settings or {}
        raw = call_user(f"{self.path}: Socket.__init__", lambda: self.socket_cls(network, **kw))
        return Socket(self.path, raw, network)


def load_model_file(path: str) -> ModelFile:
    module = import_file(path, "model")
    network_cls = getattr(module, "Network", None)
    if network_cls is None:
        raise ScorchError(f"{path}: no class Network (expected Network(torch.nn.Module) in the model file)")
    if not (isinstance(network_cls, type) and issubclass(network_cls, torch.nn.Module)):
        raise ScorchError(f"{path}: Network is a {type(network_cls).__name__}, expected a subclass of torch.nn.Module")
    socket_cls = getattr(module, "Socket", None)
    if socket_cls is None:
        raise ScorchError(f"{path}: no class Socket (expected Socket(model) with criterion, metrics and trainable_modules)")
    for method in ("criterion", "metrics"):
        if not callable(getattr(socket_cls, method, None)):
            raise ScorchError(f"{path}: Socket has no method {method}(preds, targets)")
    return ModelFile(path, module, network_cls, socket_cls)


TRAINABLE_ATTRS = ("trainable_modules", "train_modules")  # today's name, then the original scorch's


class Socket:
    """The user's Socket, with each call checked against the contract.

    Both spellings of the contract are accepted as written: today's (``trainable_modules``, and
    ``optimizer(params)``/``scheduler(optimizer)`` methods) and the original scorch's
    (``train_modules``, and ``optimizer``/``scheduler`` instances built in ``Socket.__init__``: those
    instances are the ones that train, are stepped, saved and restored)."""

    def __init__(self, path: str, raw: Any, network: torch.nn.Module):
        self.path, self.raw = path, raw
        self.modules_attr = next((a for a in TRAINABLE_ATTRS if getattr(raw, a, None) is not None), TRAINABLE_ATTRS[0])
        where = f"{path}: Socket.{self.modules_attr}"
        modules = getattr(raw, self.modules_attr, None)
        if isinstance(modules, (list, tuple)):
            bad = [m for m in modules if not isinstance(m, torch.nn.Module)]
            if bad:
                raise ScorchError(f"{where} holds a {_describe(bad[0])}, expected the Network's modules (a "
                                  "torch.nn.ModuleList of them)")
            modules = torch.nn.ModuleList(modules)
        if not isinstance(modules, torch.nn.ModuleList):
            found = _describe(modules) if modules is not None else "missing"
            raise ScorchError(f"{where} is {found}, expected a torch.nn.ModuleList of the Network's modules (the "
                              "original scorch's name, train_modules, is accepted too)")
        self.trainable_modules = modules
        self.network = network
        self.trainable_params = self._trainable(where)
        self.attach(Run.detached())  # outside training (load_run, scorch-test, the pre-flight batch) run.log records nothing
        self.host_metrics = False  # Socket.metrics gets CPU copies (its numpy code met CUDA tensors)

    def _trainable(self, where: str) -> list[torch.nn.Parameter]:
        net_params = {id(p) for p in self.network.parameters()}
        params: list[torch.nn.Parameter] = []
        seen: set[int] = set()
        frozen = 0
        for p in self.trainable_modules.parameters():
            if id(p) not in net_params:
                raise ScorchError(f"{where} holds parameters that are not the Network's")
            if id(p) in seen:
                continue
            seen.add(id(p))
            if p.requires_grad:
                params.append(p)
            else:  # frozen the usual PyTorch way (backbone.requires_grad_(False)): not trained, not synchronized
                frozen += 1
        if not params:
            raise ScorchError(f"{where} has no parameters to train" +
                              (f" (all {frozen} have requires_grad=False)" if frozen else ""))
        return params

    def refresh_parameters(self) -> None:
        """Take the trainable modules' parameters anew (a sharded strategy replaced them by sharded ones)."""
        self.trainable_params = self._trainable(f"{self.path}: Socket.{self.modules_attr}")

    @property
    def has_optimizer(self) -> bool:
        """Whether the model file builds the optimizer itself (Socket.optimizer, a method or an instance,
        or Socket.optimizers of a custom step)."""
        return getattr(self.raw, "optimizer", None) is not None or self.has_custom_step

    @property
    def has_custom_step(self) -> bool:
        """Whether the Socket trains itself (scorch.training.custom_step): Socket.optimizers() and
        Socket.training_step(batch, step), both or neither."""
        optimizers, step = callable(getattr(self.raw, "optimizers", None)), callable(getattr(self.raw, "training_step", None))
        if optimizers != step:
            have, lack = ("optimizers", "training_step") if optimizers else ("training_step", "optimizers")
            raise ScorchError(f"{self.path}: Socket defines {have} but not {lack}; a custom step needs both "
                              "(Socket.optimizers() and Socket.training_step(batch, step))")
        if optimizers and getattr(self.raw, "optimizer", None) is not None:
            raise ScorchError(f"{self.path}: Socket defines both optimizer and optimizers; a custom step's optimizers "
                              "come from Socket.optimizers() alone")
        return optimizers

    @property
    def has_scheduler(self) -> bool:
        """Whether the model file sets the learning rate itself (Socket.scheduler, a method or an instance)."""
        return getattr(self.raw, "scheduler", None) is not None

    @property
    def scheduler_interval(self) -> str:
        """When Socket.scheduler is stepped: ``"epoch"`` (at each epoch's end, the default) or ``"step"``
        (after every optimizer step), from the Socket's ``scheduler_interval`` attribute."""
        interval = getattr(self.raw, "scheduler_interval", "epoch")
        if interval not in ("epoch", "step"):
            raise ScorchError(f"{self.path}: Socket.scheduler_interval is {interval!r}, expected \"epoch\" or \"step\"")
        return str(interval)

    @property
    def has_split_metrics(self) -> bool:
        return callable(getattr(self.raw, "split_metrics", None))

    @property
    def has_visualize(self) -> bool:
        return callable(getattr(self.raw, "visualize", None))

    def train_mode(self) -> None:
        """The Network trains, except its frozen modules, which stay in eval mode: a frozen
        BatchNorm's running statistics never move, a frozen Dropout is off. Frozen: the largest
        subtrees outside the trainable modules that hold parameters (all of them frozen, then). A
        module without parameters outside them (a Dropout, a BatchNorm(affine=False), an
        activation) is not frozen: it trains with the Network."""
        self.network.train()
        for _, module in self.frozen_modules:
            module.eval()

    @functools.cached_property
    def frozen_modules(self) -> list[tuple[str, torch.nn.Module]]:
        """The frozen subtrees, by name: the largest that hold no trainable module but hold parameters."""
        trainable = {id(m) for top in self.trainable_modules for m in top.modules()}
        training = {id(m) for m in self.network.modules() if any(id(d) in trainable for d in m.modules())}
        return [(f"{name}.{child_name}" if name else child_name, child)
                for name, parent in self.network.named_modules() if id(parent) in training and id(parent) not in trainable
                for child_name, child in parent.named_children()
                if id(child) not in training and next(child.parameters(), None) is not None]

    def named_trainable_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        ids = {id(p) for p in self.trainable_params}
        return [(n, p) for n, p in self.network.named_parameters() if id(p) in ids]

    def criterion(self, preds: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
        return self.raw.criterion(preds, targets)

    def metrics(self, preds: list[torch.Tensor], targets: list[torch.Tensor]) -> dict[str, Any]:
        """Per-batch metrics of detached predictions (so that ``pred[0].numpy()`` works)."""
        return self.named(self._call_metrics([p.detach() for p in preds], targets), "metrics")

    def _call_metrics(self, preds: list[torch.Tensor], targets: list[torch.Tensor]) -> Any:
        if self.host_metrics:
            return self.raw.metrics(_on_cpu(preds), _on_cpu(targets))
        try:
            return self.raw.metrics(preds, targets)
        except TypeError as exc:
            # numpy on CUDA tensors ("can't convert cuda:0 device type tensor to numpy"), as the original
            # scorch's metrics were written: from now on they get CPU copies.
            if "cuda" not in str(exc) or not any(isinstance(t, torch.Tensor) and t.is_cuda for t in [*preds, *targets]):
                raise
            self.host_metrics = True
            log.info("%s: Socket.metrics converts tensors to numpy: it gets CPU copies of each batch", self.path)
            return self.raw.metrics(_on_cpu(preds), _on_cpu(targets))

    def split_metrics(self, preds: list[torch.Tensor], targets: list[torch.Tensor]) -> dict[str, float]:
        """Metrics of a whole split (every sample once, in dataset order), as plain floats."""
        where = f"{self.path}: Socket.split_metrics"
        values = self.named(call_user(where, self.raw.split_metrics, preds, targets), "split_metrics")
        return {name: float(v) for name, v in values.items()}

    def named(self, value: Any, method: str) -> dict[str, Any]:
        """``value`` as name -> number (:func:`normalize_metrics`). A metric named ``loss`` is kept as
        ``METHOD.loss`` (``metrics.loss``): the ``loss`` column is always the criterion's."""
        out = normalize_metrics(value, f"{self.path}: Socket.{method}")
        if "loss" not in out:
            return out
        kept = f"{method}.loss"
        if kept in out:
            raise ScorchError(f"{self.path}: Socket.{method} returned both 'loss' and {kept!r}, expected one of them "
                              f"(a metric named 'loss' is recorded as {kept!r}, beside the criterion's loss)")
        return {(kept if name == "loss" else name): v for name, v in out.items()}

    def visualize(self, inputs: list[torch.Tensor], preds: list[torch.Tensor], targets: list[torch.Tensor]) -> Visuals:
        where = f"{self.path}: Socket.visualize"
        return check_visuals(call_user(where, self.raw.visualize, inputs, [p.detach() for p in preds], targets), where)

    def optimizer(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer | None:
        """The model file's optimizer: Socket.optimizer(params), or the instance Socket.optimizer is."""
        hook = getattr(self.raw, "optimizer", None)
        if hook is None:
            return None
        where = f"{self.path}: Socket.optimizer"
        if isinstance(hook, torch.optim.Optimizer):
            self.check_optimizer(hook, where)
            return hook
        if not callable(hook):
            raise ScorchError(f"{where} is {_describe(hook)}, expected a torch.optim.Optimizer (built in Socket.__init__) "
                              "or a method optimizer(params) returning one")
        opt = call_user(where, hook, params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise ScorchError(f"{where} returned {_describe(opt)}, expected a torch.optim.Optimizer")
        return opt

    def check_optimizer(self, optimizer: torch.optim.Optimizer, where: str) -> None:
        """Every parameter ``optimizer`` holds must be a trainable one (frozen ones get no gradient, and
        Horovod's optimizer refuses parameters it is not told about)."""
        trainable = {id(p) for p in self.trainable_params}
        names = {id(p): n for n, p in self.network.named_parameters()}
        for group in optimizer.param_groups:
            for p in group["params"]:
                if id(p) not in trainable:
                    what = (f"{names[id(p)]!r}, which is outside Socket.{self.modules_attr} (frozen)" if id(p) in names
                            else "a tensor that is not a parameter of the Network")
                    raise ScorchError(f"{where} optimises {what}; expected an optimizer over the parameters of "
                                      f"Socket.{self.modules_attr} only (e.g. self.{self.modules_attr}.parameters())")

    def scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """Socket.scheduler(optimizer), or the instance Socket.scheduler is (over Socket.optimizer)."""
        hook = getattr(self.raw, "scheduler", None)
        if hook is None:
            return None
        where = f"{self.path}: Socket.scheduler"
        if _is_scheduler(hook):
            owner = getattr(hook, "optimizer", None)
            if owner is not None and owner is not optimizer and owner is not getattr(self.raw, "optimizer", None):
                raise ScorchError(f"{where} is attached to an optimizer that does not train; expected a scheduler of "
                                  "Socket.optimizer (e.g. ReduceLROnPlateau(self.optimizer))")
            if owner is not None and owner is not optimizer:
                _reattach(hook, optimizer)
            return hook
        if not callable(hook):
            raise ScorchError(f"{where} is {_describe(hook)}, expected an LR scheduler (built in Socket.__init__) or "
                              "a method scheduler(optimizer) returning one")
        sched = call_user(where, hook, optimizer)
        if sched is not None and not _is_scheduler(sched):
            raise ScorchError(f"{where} returned {_describe(sched)}, expected an LR scheduler or None")
        return sched

    def check_scheduler_interval(self, scheduler: Any) -> None:
        """A ReduceLROnPlateau needs a monitored value, which only an epoch's end has."""
        if self.scheduler_interval == "step" and isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            raise ScorchError(f"{self.path}: Socket.scheduler_interval is \"step\" but Socket.scheduler is "
                              "ReduceLROnPlateau, which is stepped with the monitored value of a validation; "
                              "leave scheduler_interval at \"epoch\"")


    def attach(self, run: Any) -> None:
        """Make ``run`` the Socket's ``self.run`` (unless the model file's Socket uses that name itself)."""
        if "run" not in dir(type(self.raw)):
            self.raw.run = run

    def callbacks(self) -> list[Any]:
        """Socket.callbacks(): the model file's callbacks ([] without the method)."""
        return self._extensions("callbacks")

    def loggers(self) -> list[Any]:
        """Socket.loggers(): the model file's loggers, beside --logger's ([] without the method)."""
        return self._extensions("loggers")

    def shard_units(self) -> list[torch.nn.Module] | None:
        """Socket.shard_units(): the Network's modules a sharded strategy shards one by one (None
        without the method: the strategy's default)."""
        hook = getattr(self.raw, "shard_units", None)
        if hook is None:
            return None
        where = f"{self.path}: Socket.shard_units()"
        if not callable(hook):
            raise ScorchError(f"{where[:-2]} is {_describe(hook)}, expected a method returning a list of the Network's modules")
        value = call_user(where, hook)
        if not isinstance(value, (list, tuple, torch.nn.ModuleList)):
            raise ScorchError(f"{where} returned {_describe(value)}, expected a list of the Network's modules")
        own = {id(m) for m in self.network.modules()}
        bad = next((v for v in value if not isinstance(v, torch.nn.Module) or id(v) not in own or v is self.network), None)
        if bad is not None:
            what = "the Network itself (always sharded as the root)" if bad is self.network else _describe(bad)
            raise ScorchError(f"{where} returned {what}, expected modules inside the Network")
        return list(value)

    def _extensions(self, method: str) -> list[Any]:
        hook = getattr(self.raw, method, None)
        if hook is None:
            return []
        where = f"{self.path}: Socket.{method}()"
        if not callable(hook):
            raise ScorchError(f"{where[:-2]} is {_describe(hook)}, expected a method returning a list")
        value = call_user(where, hook)
        if not isinstance(value, (list, tuple)):
            raise ScorchError(f"{where} returned {_describe(value)}, expected a list")
        kind: type = Callback if method == "callbacks" else Logger
        bad = next((v for v in value if not isinstance(v, kind)), None)
        if bad is not None:
            raise ScorchError(f"{where} returned {_describe(bad)}, expected scorch.{kind.__name__} instances")
        return list(value)


def _is_scheduler(value: Any) -> bool:
    return not inspect.isroutine(value) and hasattr(value, "step") and hasattr(value, "state_dict")


def _on_cpu(tensors: list[Any]) -> list[Any]:
    return [t.cpu() if isinstance(t, torch.Tensor) else t for t in tensors]


def normalize_metrics(value: Any, where: str) -> dict[str, Any]:
    """dict name -> number (a Python or numpy number, or a one-element tensor or array); a list or
    tuple is named metric0, metric1, ..."""
    if value is None:
        return {}
    if isinstance(value, (list, tuple)):
        value = {f"metric{i}": v for i, v in enumerate(value)}
    if not isinstance(value, dict):
        raise ScorchError(f"{where} returned {_describe(value)}, expected a dict of name -> number")
    out: dict[str, Any] = {}
    for name, v in value.items():
        if not isinstance(name, str) or not name or "/" in name or "," in name:
            raise ScorchError(f"{where}: metric name {name!r} must be a non-empty string without '/' or ','")
        if isinstance(v, (np.ndarray, np.generic)) and v.dtype.kind in "biuf" and v.size == 1:
            v = float(v.reshape(()))  # numpy scalars and one-element arrays, as the original scorch's metrics return
        if isinstance(v, torch.Tensor):
            if v.numel() != 1:
                raise ScorchError(f"{where}: metric {name!r} is a {_describe(v)}, expected a number")
            v = v.detach().reshape(())
        elif not isinstance(v, numbers.Real):
            raise ScorchError(f"{where}: metric {name!r} is a {_describe(v)}, expected a number")
        out[name] = v
    return out


@dataclass(frozen=True)
class Visuals:
    """What Socket.visualize returned, checked: images (CPU tensors, CHW or HW) and texts by tag."""

    images: dict[str, torch.Tensor]
    texts: dict[str, str]


def check_visuals(value: Any, where: str) -> Visuals:
    """``{"images": {tag: tensor CHW or HW}, "texts": {tag: str}}``, either key optional (None: nothing)."""
    expected = "expected a dict with 'images' ({tag: tensor CHW or HW}) and/or 'texts' ({tag: str})"
    if value is None:
        return Visuals({}, {})
    if not isinstance(value, dict) or set(value) - {"images", "texts"}:
        keys = f" with keys {sorted(map(str, value))}" if isinstance(value, dict) else ""
        raise ScorchError(f"{where} returned {_describe(value)}{keys}, {expected}")
    parts = {key: value.get(key) or {} for key in ("images", "texts")}
    for key, part in parts.items():
        if not isinstance(part, dict):
            raise ScorchError(f"{where} returned {key!r} as {_describe(part)}, {expected}")
        bad = next((tag for tag in part if not isinstance(tag, str) or not tag), None)
        if bad is not None:
            raise ScorchError(f"{where}: {key} tag {bad!r} is not a non-empty string, {expected}")
    images = {}
    for tag, image in parts["images"].items():
        if isinstance(image, np.ndarray):
            image = torch.from_numpy(image)
        if not (isinstance(image, torch.Tensor) and (image.dim() == 2 or (image.dim() == 3 and image.shape[0] in (1, 3, 4)))):
            raise ScorchError(f"{where}: image {tag!r} is {_describe(image)}, expected a tensor CHW (C = 1, 3 or 4) or HW")
        images[tag] = image.detach().cpu()
    texts = parts["texts"]
    bad_text = next((tag for tag, text in texts.items() if not isinstance(text, str)), None)
    if bad_text is not None:
        raise ScorchError(f"{where}: text {bad_text!r} is {_describe(texts[bad_text])}, expected a str")
    return Visuals(images, dict(texts))


@dataclass
class DatasetFile:
    path: str
    module: ModuleType
    dataset_cls: type
    index_cls: type | None

    settings_given: dict[str, Any] | None = None

    def _first(self) -> dict[str, Any] | None:
        """What the class that gets the dataset path declares: DataSetIndex(path, ...) (or the
        module's ``CONFIG``), else DataSet(path, mode, ...) without an index. None: ``**kwargs``."""
        cls, skip = (self.index_cls, 1) if self.index_cls is not None else (self.dataset_cls, 2)
        return declared_settings(self.module, cls, skip)

    def _own(self) -> dict[str, Any]:
        """With a DataSetIndex, the DataSet's own keyword arguments after (index, mode) (an
        augmentation strength), also ``dataset.NAME`` settings; {} without an index."""
        if self.index_cls is None:
            return {}
        return declared_settings(None, self.dataset_cls, 2) or {}

    def declared(self) -> dict[str, Any] | None:
        """Every ``dataset.NAME`` with its default (None: any name, the first class takes ``**kwargs``)."""
        first = self._first()
        return None if first is None else {**self._own(), **first}

    def settings(self, given: dict[str, Any]) -> dict[str, Any]:
        """``dataset.NAME`` settings, resolved: passed to DataSetIndex(path, **settings), or to
        DataSet(path, mode, **settings) without one; with an index, those the DataSet's constructor
        names (``DataSet(index, mode, strength=0.5)``) go to the DataSet (a name both take, to both)."""
        cls = self.index_cls if self.index_cls is not None else self.dataset_cls
        where = f"{self.path}: {cls.__name__}" + (" or DataSet" if self._own() else "")
        own = self._own()
        if self._first() is None:  # DataSetIndex(path, **kwargs) takes any name; the DataSet's are checked
            resolve_settings(own, {k: v for k, v in given.items() if k in own}, "dataset", where)
            return {**own, **given}
        return resolve_settings(self.declared(), given, "dataset", where)

    def _index_kwargs(self) -> dict[str, Any]:
        settings, first, own = self.settings_given or {}, self._first(), self._own()
        if first is None:
            return {k: v for k, v in settings.items() if k not in own}
        return {k: v for k, v in settings.items() if k in first}

    def build_index(self, dataset_path: str | None, settings: dict[str, Any] | None = None) -> Any:
        self.settings_given = settings or {}
        if self.index_cls is None:
            return dataset_path
        kw, index_cls = self._index_kwargs(), self.index_cls
        return call_user(f"{self.path}: DataSetIndex.__init__", lambda: index_cls(dataset_path, **kw))

    def build(self, index: Any, mode: str) -> Any:
        settings = self.settings_given or {}
        kw = settings if self.index_cls is None else {k: v for k, v in settings.items() if k in self._own()}
        ds = call_user(f"{self.path}: DataSet.__init__(mode={mode!r})", lambda: self.dataset_cls(index, mode, **kw))
        n = call_user(f"{self.path}: DataSet.__len__ (mode={mode!r})", len, ds)
        if n < 0:
            raise ScorchError(f"{self.path}: DataSet.__len__ (mode={mode!r}) returned {n}")
        return ds


def load_dataset_file(path: str) -> DatasetFile:
    module = import_file(path, "dataset")
    dataset_cls = getattr(module, "DataSet", None)
    if dataset_cls is None:
        raise ScorchError(f"{path}: no class DataSet (expected DataSet(ds_index, mode) in the dataset file)")
    for method in ("__len__", "__getitem__"):
        if not callable(getattr(dataset_cls, method, None)):
            raise ScorchError(f"{path}: DataSet has no method {method}")
    return DatasetFile(path, module, dataset_cls, getattr(module, "DataSetIndex", None))


def _reattach(scheduler: Any, optimizer: torch.optim.Optimizer) -> None:
    """Make a scheduler built over Socket.optimizer set the rates of ``optimizer``, the one that
    trains: a strategy's wrapper built from it (Horovod's DistributedOptimizer), whose parameter
    groups a resume's load_state_dict replaces. Left on the original, the scheduler would set rates
    nobody reads after a resume. Its optimizer.step is patched again, as the scheduler did its own."""
    scheduler.optimizer = optimizer
    step = getattr(optimizer, "step", None)
    func = getattr(step, "__func__", None)  # the class's step, bound to the optimizer
    if func is not None and not hasattr(step, "_wrapped_by_lr_sched") and hasattr(scheduler, "_initial_step"):
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            optimizer._opt_called = True  # type: ignore[attr-defined]
            return func(optimizer, *args, **kwargs)

        wrapper._wrapped_by_lr_sched = True  # type: ignore[attr-defined]
        optimizer.step = wrapper  # type: ignore[method-assign]


def check_item(item: Any, where: str) -> tuple[list[Any], list[Any]]:
    """An item must be (list_of_inputs, list_of_targets)."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise ScorchError(f"{where} returned {_describe(item)}, expected a pair (list_of_inputs, list_of_targets)")
    inputs, targets = item
    for what, part in (("inputs", inputs), ("targets", targets)):
        if not isinstance(part, (list, tuple)):
            raise ScorchError(f"{where} returned {what} as {_describe(part)}, expected a list")
    return list(inputs), list(targets)


def check_preds(preds: Any, where: str) -> list[torch.Tensor]:
    if not isinstance(preds, (list, tuple)) or not preds:
        raise ScorchError(f"{where} returned {_describe(preds)}, expected a non-empty list of tensors")
    for i, p in enumerate(preds):
        if not isinstance(p, torch.Tensor):
            raise ScorchError(f"{where} returned {_describe(p)} at position {i}, expected a tensor")
    return list(preds)


def check_loss(loss: Any, where: str) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or loss.dim() > 1:
        raise ScorchError(f"{where} returned {_describe(loss)}, expected a scalar tensor")
    if not loss.dtype.is_floating_point:
        raise ScorchError(f"{where} returned a {_describe(loss)}, expected a floating-point scalar")
    return loss.reshape(())


def is_finite(value: Any) -> bool:
    return math.isfinite(float(value.detach() if isinstance(value, torch.Tensor) else value))
