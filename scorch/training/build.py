"""Turn a TrainConfig into ready objects, checking the user's files before anything is written."""
from __future__ import annotations

import contextlib
import logging
import random
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import data
from .._loading import from_checkpoint
from ..config import TrainConfig
from ..contract import parts as parts_settings, userfiles
from ..contract.userfiles import DatasetFile, ModelFile, Socket, call_user, check_loss, check_preds
from ..distributed.backends.base import Backend
from ..errors import ScorchError
from ..evaluate.outputs import SplitOutputs
from . import compiling, init_from
from .monitor import default_monitor

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Parts:
    """What the loop needs, built and checked."""

    config: TrainConfig
    backend: Backend
    model_file: ModelFile
    dataset_file: DatasetFile
    network: torch.nn.Module  # the user's Network (unwrapped)
    socket: Socket
    train_set: Any
    valid_set: Any | None
    metric_names: list[str]
    monitor: str
    monitor_mode: str
    unused_parameters: bool = False  # some trainable parameter got no gradient from the first batch
    split_names: list[str] = field(default_factory=list)  # what Socket.split_metrics returns (valid/NAME)
    index: Any = None  # the DataSetIndex (or the dataset path) every split is built from
    given: TrainConfig | None = None  # the settings as given, when a resume fitted them (saved: see saved_settings)
    init_from: dict[str, Any] | None = None  # where --init-from loaded the weights from (meta.json)

    @property
    def saved_settings(self) -> TrainConfig:
        """What config.json and every checkpoint hold: the settings as the user gave them, not as a
        resume fitted them to this world size (--batch-size, --accumulate), so that the same command
        line again means the same run on any world size."""
        return self.given if self.given is not None else self.config

    @property
    def device(self) -> torch.device:
        return self.backend.device

    def train_mode(self) -> None:
        self.socket.train_mode()


def _shapes(tensors: list[Any]) -> str:
    return "[" + ", ".join(str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__ for t in tensors) + "]"


def run_batch_checks(
    network: Callable[[list[Any]], Any], socket: Socket, batch: data.Batch, path: str, mode: str
) -> tuple[list[torch.Tensor], torch.Tensor, dict[str, Any]]:
    """Forward, criterion and metrics on one batch; each failure is one line naming the method."""
    inputs, targets = batch
    preds = check_preds(call_user(f"{path}: Network.forward", network, inputs), f"{path}: Network.forward")
    shapes = f"(preds {_shapes(preds)}, targets {_shapes(targets)})"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = call_user(f"{path}: Socket.criterion {shapes}", socket.criterion, preds, targets)
    for w in caught:
        if "size" in str(w.message) and ("broadcast" in str(w.message) or "target" in str(w.message)):
            raise ScorchError(f"{path}: Socket.criterion got shapes that do not match {shapes}: {w.message}")
    loss = check_loss(loss, f"{path}: Socket.criterion")
    if not userfiles.is_finite(loss):
        raise ScorchError(f"{path}: Socket.criterion returned {loss.item()} on the first {mode} batch, expected a finite number")
    metrics = call_user(f"{path}: Socket.metrics {shapes}", socket.metrics, preds, targets)
    return preds, loss, metrics


def first_batch(ds: Any, n: int, where: str, collate: data.ListCollate) -> data.Batch:
    indices = range(min(n, len(ds)))
    return collate(data.Items([call_user(f"{where} (index {i})", ds.__getitem__, i) for i in indices], indices))


@contextlib.contextmanager
def forked_rngs() -> Iterator[None]:
    """torch's CPU, numpy's and ``random``'s global RNGs are as they were afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def preflight(parts: Parts, batch_size: int) -> tuple[list[str], list[str]]:
    """Run one train batch and one valid batch through the user's code; return the metric names
    and the trainable parameters the train batch's loss does not depend on. With a valid split,
    Socket.split_metrics runs on a sample of it (:func:`split_preflight`) and Socket.visualize on
    its first batch, so that their errors stop the run before it starts.

    Runs in eval mode with every global RNG forked (torch's CPU one, numpy's, ``random``'s), so
    the run it checks draws exactly what it would have drawn without it."""
    dpath, mpath = parts.dataset_file.path, parts.model_file.path
    names: list[str] | None = None
    unused: list[str] = []
    parts.network.eval()
    with forked_rngs():
        for mode, ds in (("train", parts.train_set), ("valid", parts.valid_set)):
            if ds is None or len(ds) == 0:
                continue
            where = f"{dpath}: DataSet.__getitem__ (mode={mode!r})"
            batch = data.to_device(first_batch(ds, batch_size, where, data.ListCollate(where)), parts.device, False)
            with torch.set_grad_enabled(mode == "train"):
                preds, loss, metrics = run_batch_checks(parts.network, parts.socket, batch, mpath, mode)
                if mode == "train":
                    unused = unused_parameters(parts.socket, loss)
            if names is None:
                names = list(metrics)
            elif list(metrics) != names:
                raise ScorchError(
                    f"{mpath}: Socket.metrics returned {list(metrics)} on a valid batch but {names} on a train batch; "
                    "expected the same names"
                )
            if mode == "valid" and parts.socket.has_visualize:
                parts.socket.visualize(batch[0], preds, batch[1])
        if parts.valid_set is not None:
            parts.split_names = list(split_preflight(parts.network, parts.socket, parts.valid_set, batch_size, parts.device,
                                                     f"{dpath}: DataSet.__getitem__ (mode='valid')", names or []))
    if "metrics.loss" in (names or []):
        log.info("%s: Socket.metrics returns 'loss': recorded as train/metrics.loss and valid/metrics.loss (the loss "
                 "columns are Socket.criterion's)", mpath)
    return names or [], unused


def eval_metric_names(network: torch.nn.Module, socket: Socket, ds: Any, batch_size: int, device: torch.device,
                      where: str, mode: str) -> list[str]:
    """The names Socket.metrics returns on the first batch of ``ds``, checking forward, criterion and
    metrics on it (eval mode, no gradient, every global RNG forked)."""
    network.eval()
    with forked_rngs(), torch.no_grad():
        batch = data.to_device(first_batch(ds, batch_size, where, data.ListCollate(where)), device, False)
        _, _, metrics = run_batch_checks(network, socket, batch, socket.path, mode)
    return list(metrics)


SPLIT_SAMPLE = 64  # samples of the split that the pre-flight check gives Socket.split_metrics


def split_preflight(network: torch.nn.Module, socket: Socket, ds: Any, batch_size: int, device: torch.device,
                    where: str, metric_names: list[str]) -> dict[str, float]:
    """Socket.split_metrics on up to :data:`SPLIT_SAMPLE` samples spread over ``ds`` (first and last
    included; eval mode, no gradient): what it returns, whose names must differ from Socket.metrics'.
    {} without it."""
    if not socket.has_split_metrics or len(ds) == 0:
        return {}
    network.eval()
    n = min(len(ds), SPLIT_SAMPLE)
    indices = sorted({round(i * (len(ds) - 1) / max(1, n - 1)) for i in range(n)})
    collate = data.ListCollate(where)
    outputs = SplitOutputs(targets=True)
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            some = indices[start:start + batch_size]
            items = data.Items([call_user(f"{where} (index {i})", ds.__getitem__, i) for i in some], some)
            inputs, targets = data.to_device(collate(items), device, False)
            outputs.add(check_preds(network(inputs), f"{socket.path}: Network.forward"), targets)
    joined = outputs.joined(len(indices), socket.path)
    values = socket.split_metrics(joined[:outputs.n_preds], joined[outputs.n_preds:])
    clash = [name for name in values if name in metric_names]
    if clash:
        raise ScorchError(f"{socket.path}: Socket.split_metrics returned {clash[0]!r}, which Socket.metrics returns "
                          "too; expected names of their own (both are columns valid/NAME)")
    return values


def unused_parameters(socket: Socket, loss: torch.Tensor) -> list[str]:
    """Names of trainable parameters that get no gradient from ``loss``."""
    named = socket.named_trainable_parameters()
    if not loss.requires_grad:
        raise ScorchError(f"{socket.path}: Socket.criterion returned a loss without a gradient (detached, or "
                          "computed outside torch?); expected a tensor computed from the Network's outputs")
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    return [name for (name, _), g in zip(named, grads) if g is None]


def resolve_monitor(config: TrainConfig, metric_names: list[str], has_valid: bool, split_names: list[str] | None = None) -> str:
    """--monitor, checked; by default ``valid/main`` when the model file has a metric ``main`` (the
    original scorch's convention: it drives the best model and the scheduler), else ``valid/loss``
    (``train/...`` without a valid split)."""
    valid = [f"train/{m}" for m in ["loss", *metric_names]]
    if has_valid:
        valid += [f"valid/{m}" for m in ["loss", *metric_names, *(split_names or [])]]
    monitor = config.monitor or default_monitor(valid, has_valid)
    if monitor not in valid:
        raise ScorchError(f"--monitor: unknown metric {monitor!r}; expected one of {', '.join(valid)}")
    return monitor


def build_parts(config: TrainConfig, backend: Backend) -> Parts:
    """Load and check the user's files, build datasets, the Network and its Socket."""
    model_file = userfiles.load_model_file(config.model)
    dataset_file = userfiles.load_dataset_file(config.dataset)
    # Resolve every part's declared settings (defaults, shared.NAME, the DataSetIndex's model_settings()
    # facts, --set) so config.json records all of them.
    config = parts_settings.before_index(model_file, dataset_file, config)
    index = dataset_file.build_index(config.dataset_path, config.dataset_settings)
    config = parts_settings.after_index(model_file, dataset_file, config, index)
    train_set = dataset_file.build(index, "train")
    if len(train_set) == 0:
        raise ScorchError(f"{config.dataset}: DataSet(mode='train') has no samples (len 0), expected at least one")
    valid_set = _optional_split(dataset_file, index, "valid")
    if config.test and _optional_split(dataset_file, index, "test") is None:
        raise ScorchError(f"--test: {config.dataset}: DataSet(mode='test') has no samples (len 0), expected a test split")

    seed_everything(config.seed)  # the same initial weights on every rank and for every world size
    # scorch.loading(): a checkpoint's weights replace the Network's own (a resume, an --init-from of all of it)
    with from_checkpoint(config.resume or (config.init_from is not None and init_from.whole_network(model_file.socket_cls))):
        network = model_file.build_network(config.model_settings)
    network.to(backend.device)
    if config.compile:
        compiling.check(backend.device)
    seed_everything(config.seed + backend.rank)  # but each rank its own dropout and augmentation draws
    socket = model_file.build_socket(network, config.socket_settings)
    trainable = {id(p) for p in socket.trainable_params}
    for p in network.parameters():
        if id(p) not in trainable:
            p.requires_grad_(False)

    parts = Parts(config, backend, model_file, dataset_file, network, socket, train_set, valid_set, [], "", "min",
                  index=index)
    parts.metric_names, unused = preflight(parts, config.batch_size)
    if unused and backend.world_size > 1:
        if backend.name == "torch":
            log.info("%s: %s get no gradient from the first batch; DistributedDataParallel looks for unused "
                     "parameters in every step", config.model, ", ".join(unused[:3]) + (" ..." if len(unused) > 3 else ""))
        parts.unused_parameters = True
    parts.monitor = resolve_monitor(config, parts.metric_names, valid_set is not None, parts.split_names)
    parts.monitor_mode = config.monitor_direction(parts.monitor)
    return parts


def _optional_split(dataset_file: DatasetFile, index: Any, mode: str) -> Any | None:
    ds = dataset_file.build(index, mode)
    return ds if len(ds) > 0 else None


def make_optimizer(config: TrainConfig, socket: Socket, strict: bool = True) -> torch.optim.Optimizer:
    """The model file's optimizer (Socket.optimizer), else the one --optimizer names. ``strict``: the
    model file's may hold trainable parameters only (scorch-check reports the rest as model.frozen)."""
    custom = socket.optimizer(socket.trainable_params)
    if custom is not None:
        if strict:
            socket.check_optimizer(custom, f"{config.model}: Socket.optimizer")
        log.info("optimizer from %s: Socket.optimizer (--optimizer/--lr not used)", config.model)
        return custom
    params = socket.trainable_params
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def autocast_factory(config: TrainConfig, device: torch.device) -> Callable[[], ContextManager[Any]]:
    if config.amp == "off":
        return contextlib.nullcontext
    if config.amp == "fp16" and device.type == "cpu":
        log.warning("--amp fp16 on the CPU: float16 autocast and loss scaling run, but a CPU has no fast float16 "
                    "math (slower than --amp off, less precise); --amp bf16 is the CPU's mixed precision")
    dtype = torch.bfloat16 if config.amp == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(config: TrainConfig, device: torch.device) -> torch.amp.GradScaler:
    return torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")


def check_scheduler(socket: Socket, scheduler: Any, monitor: str, mode: str) -> None:
    """A ReduceLROnPlateau is stepped with the monitored value: say so when it looks the other way
    (the original scorch's ``ReduceLROnPlateau(self.optimizer)`` is mode 'min', its 'main' is maximised)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and scheduler.mode != mode:
        log.warning("%s: Socket.scheduler is ReduceLROnPlateau(mode=%r) but it is stepped with %s, which is %simised: "
                    "it lowers the rate when %s stops %s; give it mode=%r (or choose --monitor)", socket.path,
                    scheduler.mode, monitor, mode, monitor, "falling" if scheduler.mode == "min" else "rising", mode)
