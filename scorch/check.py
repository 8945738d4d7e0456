"""Checks of a MODEL_FILE and a DATASET_FILE before a run: one :class:`CheckResult` per check.

    session = check.open_files("model.py", "dataset.py")    # ScorchError if a file is unusable
    for result in check.run_all(session):
        print(check.format_result(result))

The checks run in groups, in order: :func:`check_dataset`, :func:`check_model`,
:func:`check_training`, :func:`check_checkpoint`. A check whose prerequisite did not pass
is skipped, naming it. The :class:`Session` keeps what the checks built (datasets, sample
items, batches, the Network, the overfit loss curve) so that notebooks can show it.

The checks reuse scorch-train's own: :mod:`scorch.contract.userfiles` loads the files and checks the
Socket, items and losses, :func:`scorch.training.build.run_batch_checks` the criterion and metrics,
:class:`scorch.data.ListCollate` the batching and :mod:`scorch.rundir.checkpoint` the round trip.
"""
from __future__ import annotations

import copy
import functools
import logging
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import data
from ._check_options import CheckOptions
from .config import TrainConfig
from .contract import parts
from .contract.userfiles import (
    MODES,
    DatasetFile,
    ModelFile,
    Socket,
    Visuals,
    call_user,
    check_item,
    check_loss,
    check_preds,
    is_finite,
    load_dataset_file,
    load_model_file,
)
from .errors import Failure, ScorchError
from .rundir import checkpoint
from .training import custom_step
from .training.build import SPLIT_SAMPLE, first_batch, forked_rngs, make_optimizer, run_batch_checks, seed_everything, split_preflight

log = logging.getLogger(__name__)

PASS, FAIL, SKIP, WARN = "pass", "fail", "skip", "warn"  # WARN: worth a look, not a failure (exit code unchanged)

# model.first_loss warns when the first loss of a classifier over C classes is above this many times
# ln(C) (what an untrained model that spreads its guesses over the classes gives), plus this much
# (so that few classes, where ln(C) is small, leave room for a noisy start).
FIRST_LOSS_FACTOR, FIRST_LOSS_SLACK = 3.0, 1.0
CLASSIFICATION_LOSSES = (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss)


@dataclass(frozen=True)
class CheckResult:
    name: str  # e.g. "model.gradients"
    status: str  # PASS, FAIL or SKIP
    detail: str  # what was seen; for a failure, what was expected and where to fix it

    @property
    def ok(self) -> bool:
        return self.status == PASS


class CheckFailed(Failure):
    """A check found a problem; the message is the result's detail (a failed check: exit code 1)."""


@dataclass
class Session:
    """The loaded files and everything the checks built so far."""

    dataset_file: DatasetFile
    model_file: ModelFile | None
    dataset_path: str | None
    options: CheckOptions
    on_result: Callable[[CheckResult], None] | None = None
    config: TrainConfig | None = None  # the parts' settings (--config, --set), as scorch-train would resolve them
    results: list[CheckResult] = field(default_factory=list)  # the latest result of each check that ran
    index: Any = None
    datasets: dict[str, Any] = field(default_factory=dict)  # mode -> DataSet
    samples: dict[str, list[tuple[int, list[Any], list[Any]]]] = field(default_factory=dict)  # mode -> (index, inputs, targets)
    batches: dict[str, data.Batch] = field(default_factory=dict)  # mode -> its first batch
    network: torch.nn.Module | None = None
    network_settings: dict[str, Any] = field(default_factory=dict)  # what Network(**settings) was built with
    socket_raw: Any = None  # the user's Socket, before scorch's checks wrap it
    socket: Socket | None = None
    preds: list[torch.Tensor] = field(default_factory=list)
    loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_error: ScorchError | None = None
    split_values: dict[str, float] = field(default_factory=dict)  # Socket.split_metrics on a sample (model.split_metrics)
    visuals: Visuals | None = None  # Socket.visualize on the first valid batch (model.visualize)
    optimizer_start: dict[str, Any] | None = None  # the first state of an optimizer instance the Socket built
    curve: list[float] = field(default_factory=list)  # training loss per overfit step
    initial_state: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def batch(self) -> data.Batch:
        return self.batches["train"]

    def status(self, name: str) -> str | None:
        """The status of check ``name``; None if it has not run."""
        return next((r.status for r in self.results if r.name == name), None)

    @property
    def model_path(self) -> str:
        assert self.model_file is not None
        return self.model_file.path

    @functools.cached_property
    def train_config(self) -> TrainConfig:
        """The settings scorch-train would run these files with (``--lr`` of the options, adam, no weight
        decay), built once: :func:`scorch.training.build.make_optimizer` reads them."""
        return TrainConfig(model=self.model_path, dataset=self.dataset_file.path, lr=self.options.lr, optimizer="adam",
                           seed=self.options.seed)


def open_files(
    model: str | None,
    dataset: str,
    dataset_path: str | None = None,
    options: CheckOptions | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
    config: TrainConfig | None = None,
) -> Session:
    """Import the files (ScorchError if one is missing or does not import); ``model`` may be None.
    ``config``: the parts' settings (``model_settings``, ``socket_settings``, ``dataset_settings``,
    ``shared_settings``, as :func:`scorch.contract.overrides.resolve` gives them); a name no part
    takes, or a value of the wrong type, is a ScorchError here."""
    dataset_file = load_dataset_file(dataset)
    model_file = load_model_file(model) if model is not None else None
    if config is not None:
        if model_file is not None:
            parts.check(model_file, dataset_file, config)
        else:
            parts.dataset(dataset_file, config)
    return Session(dataset_file, model_file, dataset_path, options or CheckOptions(), on_result, config=config)


def _record(s: Session, result: CheckResult) -> CheckResult:
    earlier = [i for i, r in enumerate(s.results) if r.name == result.name]
    if earlier:  # a check run again (a notebook cell run twice) replaces its result
        s.results[earlier[0]] = result
    else:
        s.results.append(result)
    log.debug("%s %s: %s", result.status, result.name, result.detail)
    if s.on_result is not None:
        s.on_result(result)
    return result


def run_all(session: Session) -> list[CheckResult]:
    return [r for group in (check_dataset, check_model, check_training, check_checkpoint) for r in group(session)]


def _run(s: Session, name: str, needs: Sequence[str], fn: Callable[[Session], str]) -> CheckResult:
    blocked = [(n, s.status(n)) for n in needs if s.status(n) != PASS]
    if blocked:
        need, status = blocked[0]
        why = {FAIL: "failed", SKIP: "was skipped", None: "has not run"}[status]
        result = CheckResult(name, SKIP, f"{need} {why}")
    else:
        try:
            result = CheckResult(name, PASS, fn(s))
        except (CheckFailed, ScorchError) as exc:
            result = CheckResult(name, FAIL, str(exc))
        except Exception as exc:  # user code called without call_user, e.g. inside a loop of ours
            result = CheckResult(name, FAIL, f"{type(exc).__name__}: {exc}")
    return _record(s, result)


def format_result(result: CheckResult, width: int = 22) -> str:
    return f"{result.status.upper():<4}  {result.name:<{width}}  {result.detail}"


def summary(results: Sequence[CheckResult]) -> str:
    counts = {status: sum(r.status == status for r in results) for status in (PASS, FAIL, SKIP, WARN)}
    warned = f", {_plural(counts[WARN], 'warning')}" if counts[WARN] else ""
    return f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped{warned}"


def exit_code(results: Sequence[CheckResult]) -> int:
    return 1 if any(r.status == FAIL for r in results) else 0


# ---- describing values -------------------------------------------------------------------

def signature(value: Any) -> str:
    """Type, dtype and shape of one element of an item, e.g. ``tensor float32 (1, 8, 8)``."""
    if isinstance(value, torch.Tensor):
        return f"tensor {str(value.dtype).replace('torch.', '')} {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"ndarray {value.dtype} {value.shape}"
    if isinstance(value, np.generic):
        return f"numpy {value.dtype}"
    return type(value).__name__


def _shapes(values: Sequence[Any]) -> str:
    return "[" + ", ".join(str(tuple(v.shape)) if isinstance(v, torch.Tensor) else type(v).__name__ for v in values) + "]"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _names(names: Sequence[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def sample_indices(length: int, k: int) -> list[int]:
    """Up to ``k`` indices spread over ``range(length)``, first and last included."""
    if length <= k:
        return list(range(length))
    return sorted({round(i * (length - 1) / (k - 1)) for i in range(k)}) if k > 1 else [0]


# ---- dataset -----------------------------------------------------------------------------

def check_dataset(s: Session) -> list[CheckResult]:
    return [
        _run(s, "dataset.index", (), _index),
        *(_run(s, f"dataset.mode.{mode}", ("dataset.index",), partial(_mode, mode=mode)) for mode in MODES),
        _run(s, "dataset.lengths", ("dataset.mode.train",), _lengths),
        _run(s, "dataset.items", ("dataset.lengths",), _items),
        _run(s, "dataset.consistency", ("dataset.items",), _consistency),
        _run(s, "dataset.collate", ("dataset.consistency",), _collate),
    ]


def _index(s: Session) -> str:
    settings = parts.dataset(s.dataset_file, s.config) if s.config is not None else s.dataset_file.settings({})
    s.index = s.dataset_file.build_index(s.dataset_path, settings)
    if s.dataset_file.index_cls is None:
        return f"no DataSetIndex; DataSet receives the dataset path ({s.dataset_path!r})"
    return f"DataSetIndex({s.dataset_path!r}) built a {type(s.index).__name__}"


def _mode(s: Session, mode: str) -> str:
    s.datasets.pop(mode, None)
    ds = s.dataset_file.build(s.index, mode)
    s.datasets[mode] = ds
    return f"DataSet(mode={mode!r}) has {len(ds)} items"


def _lengths(s: Session) -> str:
    lengths = {mode: len(ds) for mode, ds in s.datasets.items()}
    if lengths["train"] == 0:
        raise CheckFailed(f"{s.dataset_file.path}: DataSet(mode='train') has no samples (len 0), expected at least one")
    note = "; valid is empty: runs will have no validation" if lengths.get("valid") == 0 else ""
    return ", ".join(f"{mode} {n}" for mode, n in lengths.items()) + note


def _items(s: Session) -> str:
    s.samples = {}
    for mode, ds in s.datasets.items():
        rows = []
        for i in sample_indices(len(ds), s.options.sample):
            where = f"{s.dataset_file.path}: DataSet.__getitem__ (mode={mode!r}, index {i})"
            inputs, targets = check_item(call_user(where, ds.__getitem__, i), where)
            rows.append((i, inputs, targets))
        if rows:
            s.samples[mode] = rows
    _, inputs, targets = s.samples["train"][0]
    count = sum(len(rows) for rows in s.samples.values())
    return (f"{count} items are (inputs, targets) lists; train[0]: inputs [{', '.join(map(signature, inputs))}], "
            f"targets [{', '.join(map(signature, targets))}]")


def _consistency(s: Session) -> str:
    _, ref_in, ref_tg = s.samples["train"][0]
    ref = {"inputs": [signature(v) for v in ref_in], "targets": [signature(v) for v in ref_tg]}
    count = 0
    for mode, rows in s.samples.items():
        for i, inputs, targets in rows:
            count += 1
            for part, values in (("inputs", inputs), ("targets", targets)):
                if len(values) != len(ref[part]):
                    raise CheckFailed(
                        f"{s.dataset_file.path}: DataSet(mode={mode!r})[{i}] has {len(values)} {part} but train[0] has "
                        f"{len(ref[part])}; expected the same number in every item"
                    )
                for pos, value in enumerate(values):
                    if signature(value) != ref[part][pos]:
                        raise CheckFailed(
                            f"{s.dataset_file.path}: DataSet(mode={mode!r})[{i}] {part}[{pos}] is {signature(value)} but "
                            f"train[0] {part}[{pos}] is {ref[part][pos]}; expected one type, dtype and shape per position"
                        )
    return f"{count} items agree position by position (sampled over {', '.join(s.samples)})"


def _collate(s: Session) -> str:
    s.batches = {}
    for mode in s.samples:
        where = f"{s.dataset_file.path}: DataSet.__getitem__ (mode={mode!r})"
        s.batches[mode] = first_batch(s.datasets[mode], s.options.batch_size, where, data.ListCollate(where))
    inputs, targets = s.batch
    return f"first {len(s.batches)} batches collate; train: inputs {_shapes(inputs)}, targets {_shapes(targets)}"


# ---- model -------------------------------------------------------------------------------

def check_model(s: Session) -> list[CheckResult]:
    """The model checks; ``model.split_metrics`` and ``model.visualize`` only for a Socket that has them."""
    if s.model_file is None:
        raise ScorchError("no model file given: open_files(model=...) is needed for the model checks")
    socket_cls = s.model_file.socket_cls
    results = [
        _run(s, "model.network", (), _network),
        _run(s, "model.socket", ("model.network",), _socket),
        _run(s, "model.trainable", ("model.socket",), _trainable),
        _run(s, "model.forward", ("model.trainable", "dataset.collate"), _forward),
        _run(s, "model.criterion", ("model.forward",), _criterion),
        *_first_loss(s),
        _run(s, "model.metrics", ("model.criterion",), _metrics),
    ]
    for name, fn in (("split_metrics", _split_metrics), ("visualize", _visualize)):
        if callable(getattr(socket_cls, name, None)):
            results.append(_run(s, f"model.{name}", ("model.metrics",), fn))
    return [
        *results,
        _run(s, "model.gradients", ("model.criterion",), _gradients),
        _run(s, "model.optimizer", ("model.trainable",), _optimizer),
        _run(s, "model.scheduler", ("model.optimizer",), _scheduler),
        _run(s, "model.frozen", ("model.optimizer", "model.gradients"), _frozen),
    ]


def _network(s: Session) -> str:
    assert s.model_file is not None
    seed_everything(s.options.seed)
    facts = parts.suggested(s.dataset_file, s.index) if s.status("dataset.index") == PASS else {}
    s.network_settings = parts.network(s.model_file, _settings(s), facts)
    s.network, s.socket = s.model_file.build_network(s.network_settings), None
    n = sum(p.numel() for p in s.network.parameters())
    return f"Network() has {n:,} parameters in {len(list(s.network.parameters()))} tensors"


def _settings(s: Session) -> TrainConfig:
    """The parts' settings: ``s.config``, else none given."""
    return s.config if s.config is not None else TrainConfig(model=s.model_path, dataset=s.dataset_file.path)


def _socket(s: Session) -> str:
    assert s.model_file is not None
    kw, socket_cls = parts.socket(s.model_file, _settings(s)), s.model_file.socket_cls
    s.socket_raw = call_user(f"{s.model_path}: Socket.__init__", lambda: socket_cls(s.network, **kw))
    return f"Socket(network) built; criterion and metrics are defined{_optional_hooks(s.socket_raw)}"


def _optional_hooks(raw: Any) -> str:
    hooks = [h for h in ("optimizer", "optimizers", "training_step", "scheduler", "split_metrics", "visualize")
             if getattr(raw, h, None) is not None]
    return f", and {' and '.join(hooks)}" if hooks else ""


def _trainable(s: Session) -> str:
    """Socket wraps and checks trainable_modules (non-empty, the Network's); the rest is frozen as in scorch-train."""
    assert s.network is not None
    s.socket = Socket(s.model_path, s.socket_raw, s.network)
    _freeze(s.network, s.socket)
    s.initial_state = copy.deepcopy(s.network.state_dict())
    frozen = [n for n, p in s.network.named_parameters() if not p.requires_grad]
    n_train = sum(p.numel() for p in s.socket.trainable_params)
    n_all = sum(p.numel() for p in s.network.parameters())
    what = f"{len(s.socket.trainable_params)} tensors ({n_train:,} of {n_all:,} parameters) are trained"
    what += f"; frozen: {_names(frozen)}" if frozen else "; nothing is frozen"
    modules = [name for name, _ in s.socket.frozen_modules]
    return what + (f"; in eval mode while training (frozen modules): {_names(modules)}" if modules else
                   "; no module stays in eval mode")


def _freeze(network: torch.nn.Module, socket: Socket) -> None:
    trainable = {id(p) for p in socket.trainable_params}
    for p in network.parameters():
        p.requires_grad_(id(p) in trainable)


def _forward(s: Session) -> str:
    assert s.network is not None
    s.network.train()
    where = f"{s.model_path}: Network.forward"
    s.preds = [p.detach() for p in check_preds(call_user(where, s.network, s.batch[0]), where)]
    return f"returned a list of {_plural(len(s.preds), 'tensor')}: {_shapes(s.preds)}"


def _criterion(s: Session) -> str:
    """scorch-train's own batch checks, on the predictions of model.forward."""
    s.metrics_error = None
    try:
        # build.run_batch_checks only calls its network: the forward's predictions stand in for it.
        _, loss, metrics = run_batch_checks(lambda _inputs: s.preds, _built(s)[1], s.batch, s.model_path, "train")
    except ScorchError as exc:
        if not str(exc).startswith(f"{s.model_path}: Socket.metrics"):
            raise
        s.metrics_error, s.loss = exc, None  # the criterion passed before the metrics failed
        return "returned a finite scalar"
    s.loss, s.metrics = float(loss), {k: float(v) for k, v in metrics.items()}
    return f"returned a finite scalar: {s.loss:.4g}"


def classes(socket_raw: Any, preds: Sequence[Any], targets: Sequence[Any]) -> tuple[int, str] | None:
    """``(C, why)`` when the first output is a classifier's over C classes: the Socket holds a
    CrossEntropyLoss or NLLLoss (and no other loss module), or the first target is an integer
    tensor of class indices below C and the first output has one more dimension of size C (last, as
    ``(N, C)`` or ``(N, T, C)``, or second, as ``(N, C, H, W)``). None otherwise."""
    losses = [v for v in vars(socket_raw).values() if isinstance(v, torch.nn.modules.loss._Loss)] if socket_raw else []
    if losses and not all(isinstance(v, CLASSIFICATION_LOSSES) for v in losses):
        return None
    if not preds or not targets:
        return None
    p, t = preds[0], targets[0]
    if not (isinstance(p, torch.Tensor) and isinstance(t, torch.Tensor) and p.is_floating_point()
            and not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool and p.dim() == t.dim() + 1):
        return None
    if p.shape[:-1] == t.shape:
        n = int(p.shape[-1])
    elif p.dim() >= 2 and p.shape[0] == t.shape[0] and p.shape[2:] == t.shape[1:]:
        n = int(p.shape[1])
    else:
        return None
    if n < 2 or (t.numel() and int(t.max()) >= n):
        return None
    why = type(losses[0]).__name__ if losses else f"integer targets over {n} outputs"
    return n, why


def _first_loss(s: Session) -> list[CheckResult]:
    """model.first_loss, only when it warns: a classifier's first loss far above ln(C) (what an
    untrained model gives: above :data:`FIRST_LOSS_FACTOR` x ln(C) + :data:`FIRST_LOSS_SLACK`)
    says that the output layer starts far too confident (large logits, a bad initialisation or
    scale), or the criterion gets probabilities where it wants logits."""
    if s.status("model.criterion") != PASS or s.loss is None:
        return []
    found = classes(s.socket_raw, s.preds, s.batch[1]) if s.batches else None
    if found is None:
        return []
    n, why = found
    expected = math.log(n)
    limit = FIRST_LOSS_FACTOR * expected + FIRST_LOSS_SLACK
    if not s.loss > limit:
        return []
    return [_record(s, CheckResult("model.first_loss", WARN, (
        f"the first loss is {s.loss:.4g}, far above ln({n}) = {expected:.3g} that an untrained classifier over {n} "
        f"classes gives ({why}; warned above {FIRST_LOSS_FACTOR:g} x ln(C) + {FIRST_LOSS_SLACK:g} = {limit:.3g}): check "
        "the output layer's initialisation and scale, and that Socket.criterion gets logits")))]


def _metrics(s: Session) -> str:
    if s.metrics_error is not None:
        raise s.metrics_error
    if not s.metrics:
        return "returned no metrics (only the loss will be recorded)"
    return ", ".join(f"{k} {v:.4g}" for k, v in s.metrics.items())


def _eval_split(s: Session) -> str:
    """The split the evaluation hooks are checked on: valid, else train when valid is empty."""
    return "valid" if len(s.datasets.get("valid", [])) else "train"


def _split_metrics(s: Session) -> str:
    """Socket.split_metrics on a sample of the valid split, as scorch-train's pre-flight check runs it."""
    network, socket = _built(s)
    mode = _eval_split(s)
    ds = s.datasets[mode]
    where = f"{s.dataset_file.path}: DataSet.__getitem__ (mode={mode!r})"
    with forked_rngs():
        s.split_values = split_preflight(network, socket, ds, s.options.batch_size, torch.device("cpu"), where,
                                         list(s.metrics))
    n = min(len(ds), SPLIT_SAMPLE)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in s.split_values.items()) or "no metrics"
    return f"{shown} on {n} {mode} samples (a sample: in a run, the whole split)"


def _visualize(s: Session) -> str:
    """Socket.visualize on the first batch of the valid split, as validation calls it."""
    network, socket = _built(s)
    inputs, targets = s.batches.get(_eval_split(s), s.batch)
    network.eval()
    with torch.no_grad(), forked_rngs():
        preds = check_preds(call_user(f"{s.model_path}: Network.forward", network, inputs), f"{s.model_path}: Network.forward")
        s.visuals = socket.visualize(inputs, preds, targets)
    images = [f"{tag} {tuple(image.shape)}" for tag, image in s.visuals.images.items()]
    parts = [f"{_plural(len(images), 'image')} ({_names(images)})" if images else "no image",
             f"{_plural(len(s.visuals.texts), 'text')} ({_names(list(s.visuals.texts))})" if s.visuals.texts else "no text"]
    return ", ".join(parts)


def _built(s: Session) -> tuple[torch.nn.Module, Socket]:
    """The Network and its checked Socket (a check that reads them needs model.trainable)."""
    assert s.network is not None and s.socket is not None
    return s.network, s.socket


def _batch_loss(s: Session) -> torch.Tensor:
    """Forward and criterion on the check batch, as training computes them (already checked)."""
    network, socket = _built(s)
    preds = call_user(f"{s.model_path}: Network.forward", network, s.batch[0])
    where = f"{s.model_path}: Socket.criterion"
    return check_loss(call_user(where, socket.criterion, preds, s.batch[1]), where)


def _gradients(s: Session) -> str:
    assert s.network is not None and s.socket is not None
    s.network.train()
    for p in s.network.parameters():
        p.grad = None
    seed_everything(s.options.seed)
    _batch_loss(s).backward()
    named = s.socket.named_trainable_parameters()
    grads = {n: p.grad for n, p in named if p.grad is not None}
    none = [n for n, _ in named if n not in grads]
    if none:
        raise CheckFailed(
            f"{s.model_path}: no gradient reached {len(none)} of {len(named)} trainable tensors ({_names(none)}); "
            "expected every parameter of Socket.trainable_modules to be used in Network.forward without "
            ".detach(), .data or torch.no_grad() on the way to the loss"
        )
    bad = [n for n, g in grads.items() if not torch.isfinite(g).all()]
    if bad:
        raise CheckFailed(f"{s.model_path}: non-finite gradients in {_names(bad)}; expected finite numbers")
    # Exactly zero is legal at initialisation (a zero-initialised gate or last layer), so only noted;
    # train.overfit shows whether they learn.
    zero = [n for n, g in grads.items() if not g.abs().sum() > 0]
    for p in s.network.parameters():
        p.grad = None
    if zero:
        return f"all {len(named)} trainable tensors got finite gradients; exactly zero for now in {_names(zero)}"
    return f"all {len(named)} trainable tensors got finite, non-zero gradients"


def _optimizer(s: Session) -> str:
    network, socket = _built(s)
    if socket.has_custom_step:
        return _custom_optimizers(s)
    opt = _make_optimizer(s)
    _freeze(network, socket)  # a hook may have switched requires_grad
    in_opt = {id(p) for group in opt.param_groups for p in group["params"]}
    left_out = [n for n, p in socket.named_trainable_parameters() if id(p) not in in_opt]
    if left_out:
        raise CheckFailed(
            f"{s.model_path}: Socket.optimizer leaves out trainable tensors {_names(left_out)}; "
            "expected it to optimise the params it is given (the parameters of Socket.trainable_modules)"
        )
    source = ("Socket.optimizer" if callable(socket.raw.optimizer) else "Socket.optimizer (an instance)") \
        if socket.has_optimizer else "default (--lr)"
    lrs = sorted({group.get("lr") for group in opt.param_groups}, key=str)
    return f"{type(opt).__name__} from {source}, lr {', '.join(map(str, lrs))}, holds every trainable tensor"


def _custom_optimizers(s: Session) -> str:
    """A custom step (Socket.training_step): Socket.optimizers(), each named, over the trainable tensors."""
    network, socket = _built(s)
    optimizers = custom_step.build(socket)
    _freeze(network, socket)
    held = {id(p) for name in optimizers.names for p in optimizers.params(name)}
    left_out = [n for n, p in socket.named_trainable_parameters() if id(p) not in held]
    if left_out:
        raise CheckFailed(f"{s.model_path}: Socket.optimizers() leaves out trainable tensors {_names(left_out)}; expected "
                          "each parameter of Socket.trainable_modules in one of them")
    return f"custom step (Socket.training_step) with {len(optimizers.names)} optimizer(s): {optimizers.describe()}"


def _make_optimizer(s: Session) -> torch.optim.Optimizer:
    """The optimizer scorch-train would train with (not refusing frozen parameters: model.frozen
    shows what they do). An instance the model file built starts every check from its first state."""
    _, socket = _built(s)
    optimizer = make_optimizer(s.train_config, socket, strict=False)
    if optimizer is getattr(socket.raw, "optimizer", None):
        if s.optimizer_start is None:
            s.optimizer_start = copy.deepcopy(optimizer.state_dict())
        else:
            optimizer.load_state_dict(copy.deepcopy(s.optimizer_start))
    return optimizer


def _scheduler(s: Session) -> str:
    network, socket = _built(s)
    if socket.has_custom_step:
        schedulers = custom_step.build(socket).schedulers
        _freeze(network, socket)
        if schedulers is None:
            return "no scheduler in Socket.optimizers(): the learning rates stay constant"
        return "from Socket.optimizers(), stepped once per epoch: " + ", ".join(
            f"{name}: {type(v).__name__}" for name, v in schedulers.schedulers.items())
    scheduler = socket.scheduler(_make_optimizer(s))
    _freeze(network, socket)
    if scheduler is None:
        return "no Socket.scheduler: the learning rate stays constant"
    return f"{type(scheduler).__name__} from Socket.scheduler (stepped once per epoch)"


def _train_steps(s: Session, optimizer: torch.optim.Optimizer, steps: int, curve: list[float] | None = None) -> None:
    assert s.network is not None
    s.network.train()
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = _batch_loss(s)
        if not is_finite(loss.detach()):
            raise CheckFailed(f"{s.model_path}: Socket.criterion returned {float(loss)} at step {step + 1}; expected a finite number")
        loss.backward()
        optimizer.step()
        if curve is not None:
            curve.append(float(loss.detach()))


def _frozen(s: Session) -> str:
    """A few real optimizer steps; every parameter outside trainable_modules must be bit-for-bit unchanged."""
    assert s.network is not None and s.socket is not None
    named = [(n, p) for n, p in s.network.named_parameters() if not p.requires_grad]
    before = {n: p.detach().clone() for n, p in named}
    seed_everything(s.options.seed)
    try:
        _train_steps(s, _make_optimizer(s), s.options.frozen_steps)
        changed = [n for n, p in named if not torch.equal(p.detach(), before[n])]
    finally:  # start the next checks from the initial weights, frozen as scorch-train freezes them
        s.network.load_state_dict(s.initial_state)
        _freeze(s.network, s.socket)
    if changed:
        raise CheckFailed(
            f"{s.model_path}: frozen parameters changed after {s.options.frozen_steps} optimizer steps: {_names(changed)}; "
            "expected parameters outside Socket.trainable_modules to stay fixed (does Socket.optimizer or "
            "Network.forward update them, or switch requires_grad back on?)"
        )
    if not named:
        return f"nothing is frozen ({s.options.frozen_steps} optimizer steps ran)"
    return f"{len(named)} frozen tensors unchanged after {s.options.frozen_steps} optimizer steps"


# ---- training ----------------------------------------------------------------------------

def check_training(s: Session) -> list[CheckResult]:
    return [_run(s, "train.overfit", ("model.optimizer", "model.gradients"), _overfit)]


def _eval_loss(s: Session) -> float:
    assert s.network is not None
    s.network.eval()
    with torch.no_grad():
        return float(_batch_loss(s))


def _overfit(s: Session) -> str:
    """Many steps on one small batch: a model that learns at all drives its loss far down."""
    assert s.network is not None and s.socket is not None
    s.network.load_state_dict(s.initial_state)
    seed_everything(s.options.seed)
    optimizer = _make_optimizer(s)
    _freeze(s.network, s.socket)
    first = _eval_loss(s)
    s.curve = []
    _train_steps(s, optimizer, s.options.steps, s.curve)
    last = _eval_loss(s)
    drop = (first - last) / abs(first) if first != 0 else 0.0
    n = data.batch_len(s.batch)
    seen = f"loss {first:.4g} -> {last:.4g} after {s.options.steps} {type(optimizer).__name__} steps on one batch of {n}"
    if not math.isfinite(last) or drop < s.options.min_drop:
        raise CheckFailed(
            f"{seen} (down {drop:.0%}); expected down by at least {s.options.min_drop:.0%}: check the learning rate "
            "(Socket.optimizer or --lr), that the criterion compares the right outputs and targets, and the model's capacity"
        )
    return f"{seen} (down {drop:.2%})"


# ---- distributed readiness ---------------------------------------------------------------

def check_checkpoint(s: Session) -> list[CheckResult]:
    return [_run(s, "checkpoint.roundtrip", ("model.trainable",), _roundtrip)]


def _roundtrip(s: Session) -> str:
    """Save with scorch.rundir.checkpoint.save, load with weights_only into a fresh Network: same weights, same outputs."""
    assert s.network is not None and s.model_file is not None
    state = s.network.state_dict()
    with tempfile.TemporaryDirectory(prefix="scorch-check-") as tmp:
        path = Path(tmp) / "check.pt"
        checkpoint.save(path, {"model": state, "epoch": 0, "step": len(s.curve)})
        size = path.stat().st_size
        loaded = checkpoint.load(path, optimizer=False)["model"]
    seed_everything(s.options.seed + 1)  # different initial weights, so that loading has to restore them
    fresh = s.model_file.build_network(s.network_settings)
    result = call_user(f"{s.model_path}: Network.load_state_dict", fresh.load_state_dict, loaded, False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckFailed(
            f"{s.model_path}: the reloaded state_dict does not fit a fresh Network() (missing {_names(result.missing_keys)}; "
            f"unexpected {_names(result.unexpected_keys)}); expected Network() to build the same modules every time"
        )
    differ = [k for k, v in fresh.state_dict().items() if not torch.equal(v, state[k])]
    if differ:
        raise CheckFailed(f"{s.model_path}: after loading, {_names(differ)} differ from the saved values")
    if s.status("model.forward") == PASS:  # else compare the weights only
        s.network.eval()
        fresh.eval()
        with torch.no_grad():
            a = check_preds(s.network(s.batch[0]), f"{s.model_path}: Network.forward")
            b = check_preds(fresh(s.batch[0]), f"{s.model_path}: Network.forward")
        if len(a) != len(b) or not all(x.shape == y.shape and torch.allclose(x, y, rtol=1e-5, atol=1e-6) for x, y in zip(a, b)):
            raise CheckFailed(
                f"{s.model_path}: a fresh Network() loaded from the checkpoint predicts differently; expected all state "
                "in parameters or buffers (register_buffer), not plain tensor attributes, so that ranks and resumes agree"
            )
        return f"{len(state)} tensors ({size / 1024:.0f} KiB) reload with weights_only into a fresh Network(): same weights, same outputs"
    return f"{len(state)} tensors ({size / 1024:.0f} KiB) reload with weights_only into a fresh Network(): same weights"
