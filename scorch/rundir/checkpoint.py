"""Checkpoints: plain dicts of tensors and numbers, written atomically, loaded with weights_only.

Keys: ``model`` (the Network's plain state_dict), ``optimizer``, ``scheduler``, ``scaler``,
``loop`` (best value, early stopping, skipped steps), ``cursor`` (where the run is: epochs done,
steps, samples of the current epoch, global batch, world size), ``epoch`` and ``step`` (the
cursor's, for readers), ``totals`` and ``scalars`` (every rank's metric and ``run.log`` sums of an unfinished epoch),
``callbacks`` (each stateful callback's state by name), ``rng``
(one entry per rank), ``config``, ``format`` (version), ``checksum`` (CRC-32 of the rest, checked
on every load: :mod:`scorch.rundir.checksum`). :class:`TrainingState` saves and restores
the stateful objects among them in one place.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import random
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import torch

from .._atomic import atomic_open
from ..errors import NonFiniteWeights, ScorchError  # NonFiniteWeights: importable from here too (the checkpoint policy)
from ..training.state import Cursor, LoopState
from . import checksum, layout, shards
from .layout import CheckpointFiles

FORMAT = 2
log = logging.getLogger(__name__)


def save(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a crash leaves the old file intact.

    torch's zip writer reports a failed write (a full disk) only as "unexpected pos"; the file
    object remembers the OSError behind it, which is what we raise."""
    with atomic_open(path, "wb") as f:
        recorder = _WriteErrors(f)
        try:
            content = {"format": FORMAT, **state}
            content[checksum.KEY] = checksum.digest(content)
            torch.save(content, cast(IO[bytes], recorder))  # torch only writes and flushes it
        except RuntimeError:
            if recorder.error is not None:
                raise recorder.error from None
            raise


class _WriteErrors:
    """A writable file that keeps the first OSError its writes raised."""

    def __init__(self, f: Any):
        self.f: Any = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        try:
            self.f.flush()
        except OSError as exc:
            self.error = self.error or exc
            raise


def load(path: str | os.PathLike, whole: bool = True, optimizer: bool = True) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects; one clear error if unusable.

    A sharded checkpoint (a directory) gives its ``model`` and ``optimizer`` whole (read in this
    process; ``optimizer=False``: the model's alone, for a reader of the weights), or with
    ``whole=False`` only ``shards``: its path, for a strategy to load them from (sharded, on any
    number of ranks)."""
    path = Path(path)
    if path.is_dir():
        return _load_sharded(path, whole, optimizer)
    state = _read(path)
    if "model" not in state:
        raise ScorchError(f"checkpoint {path} is not a scorch checkpoint (no 'model'/'epoch' keys)")
    _check_finite(path, state)
    return state


def _load_sharded(path: Path, whole: bool, optimizer: bool) -> dict[str, Any]:
    if not layout.is_sharded(path):
        missing = layout.REST if not (path / layout.REST).is_file() else layout.DCP_METADATA
        raise ScorchError(f"checkpoint {path} is incomplete: a sharded checkpoint directory without {missing} "
                          "(a save that did not finish)")
    state = _read(path / layout.REST)
    state["shards"] = str(path)
    if whole:
        state.update(shards.read_whole(path, optimizer))
        _check_finite(path, state)
    return state


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ScorchError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a text file gives torch a KeyError
        raise ScorchError(f"checkpoint {path} is truncated or corrupt (not the zip archive torch.save writes)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ScorchError(f"checkpoint {path} was refused: it holds objects other than tensors and plain data "
                          f"({_refusal(str(exc))}); scorch never runs code from a checkpoint") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ScorchError(f"checkpoint {path} is truncated or corrupt ({first})") from exc
    if not isinstance(state, dict) or "epoch" not in state:
        raise ScorchError(f"checkpoint {path} is not a scorch checkpoint (no 'model'/'epoch' keys)")
    if not isinstance(state.get("format", FORMAT), int) or state.get("format", FORMAT) > FORMAT:
        raise ScorchError(f"checkpoint {path} is of format {state.get('format')!r}, written by a newer scorch; this one "
                          f"reads formats up to {FORMAT} (upgrade scorch)")
    if checksum.mismatch(state):
        raise ScorchError(f"checkpoint {path} is corrupt: its content does not match the checksum saved with it "
                          "(bytes changed on disk after it was written)")
    return state


def _check_finite(path: Path, state: dict[str, Any]) -> None:
    bad = _nonfinite(state["model"]) + [f"optimizer state {k}" for k in _nonfinite((state.get("optimizer") or {}).get("state"))]
    if bad:
        raise ScorchError(f"checkpoint {path} holds values that are not finite ({', '.join(bad[:3])}); resume from a good "
                          "checkpoint (--keep-checkpoints keeps older ones) or start again")


def _refusal(message: str) -> str:
    """What torch's weights-only unpickler refused, without its advice to load unsafely."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return next((line for line in lines if "unsupported" in line.lower() or "global" in line.lower()), "unpickling refused")


@dataclass
class TrainingState:
    """The objects a checkpoint restores, by checkpoint key. One place saves them all and one
    restores them: adding saved state is one entry here."""

    network: torch.nn.Module
    optimizer: Any
    scheduler: Any
    scaler: Any
    loop: LoopState
    cursor: Cursor

    def objects(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler,
                "loop": self.loop, "cursor": self.cursor}

    def state_dict(self, strategy: Any = None) -> dict[str, Any] | None:
        """Every object's state (the model's on the CPU) on rank 0, None on the other ranks; called on
        every rank (the ``strategy`` that placed the model may gather; None: one process). Raises if
        a weight is not finite."""
        if strategy is None:
            weights = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
            optimizer = self.optimizer.state_dict()
        else:
            weights = strategy.model_state_dict(self.network)
            optimizer = strategy.optimizer_state_dict(self.optimizer)
        if weights is None:
            return None
        bad = [k for k, v in weights.items() if v.is_floating_point() and not finite(v)]
        if bad:
            raise NonFiniteWeights(bad)
        return {"model": weights, "optimizer": optimizer, **self.rest_state_dict()}

    def rest_state_dict(self) -> dict[str, Any]:
        """Every object's state but the model's and the optimizer's (a sharded checkpoint's small file)."""
        state = {k: obj.state_dict() if obj is not None else None for k, obj in self.objects().items() if k != "optimizer"}
        state["epoch"], state["step"] = self.cursor.epoch, self.cursor.step
        return state

    def load_state_dict(self, state: dict[str, Any], where: str, strategy: Any = None) -> None:
        """Restore every object (every rank has read the same checkpoint); ``where`` names the model
        file in the error of a misfit."""
        if "model" not in state:  # a sharded checkpoint, loaded by the strategy from its directory
            check_fits(self.network, {k: _Shape(v) for k, v in shards.shapes(state["shards"]).items()}, where)
            strategy.load_sharded(self.network, self.optimizer, state["shards"])
        else:
            check_fits(self.network, state["model"], where)
            if strategy is None:
                self.network.load_state_dict(state["model"])
            else:
                strategy.load_model_state_dict(self.network, state["model"])
        for key, obj in self.objects().items():
            if obj is None or state.get(key) is None:
                continue
            if key == "optimizer" and strategy is not None:
                strategy.load_optimizer_state_dict(obj, state[key])
            else:
                obj.load_state_dict(state[key])


class _Shape:
    """A tensor's shape where only the shape is known (from a sharded checkpoint's metadata)."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape


def _nonfinite(tree: Any, prefix: str = "") -> list[str]:
    """The names (``0.exp_avg``) of the non-finite floating-point tensors in nested dicts and lists."""
    if isinstance(tree, torch.Tensor):
        return [prefix] if tree.is_floating_point() and not finite(tree) else []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    return [name for key, value in items for name in _nonfinite(value, f"{prefix}.{key}" if prefix else str(key))]


def finite(tensor: torch.Tensor) -> bool:
    """Every value finite: one reduction pass (min and max carry NaN and inf), without the bool copy
    ``isfinite(t).all()`` makes (20x slower on a 100 MB state)."""
    if tensor.numel() == 0:
        return True
    low, high = torch.aminmax(tensor.detach())
    return math.isfinite(float(low)) and math.isfinite(float(high))


def check_fits(network: torch.nn.Module, weights: dict[str, Any], where: str) -> None:
    """One line naming the first key that is missing, unexpected or of another shape."""
    own = network.state_dict()
    for key, value in own.items():
        if key not in weights:
            raise ScorchError(f"checkpoint does not fit {where}: it has no {key!r} (shape {tuple(value.shape)})")
        if tuple(weights[key].shape) != tuple(value.shape):
            raise ScorchError(f"checkpoint does not fit {where}: {key!r} has shape {tuple(weights[key].shape)} "
                              f"in the checkpoint, {tuple(value.shape)} in the Network")
    extra = [k for k in weights if k not in own]
    if extra:
        raise ScorchError(f"checkpoint does not fit {where}: {extra[0]!r} is in the checkpoint but not in the Network")


def rng_state() -> dict[str, Any]:
    """This process's RNG states as plain data (loadable with weights_only)."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(np_kind),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "python": [int(py_version), [int(x) for x in py_state], py_gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` the same file as ``src`` atomically (a hard link; a copy where links fail)."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


class CheckpointDir:
    """``checkpoints/``: ``last.pt``, ``best.pt`` and, with ``keep`` > 1, the newest ``keep``
    checkpoints as ``step-NNNNNNNNN.pt`` (last.pt and best.pt are hard links to them, so each
    checkpoint is written once); a sharded run's ``step-NNNNNNNNN.dcp`` directories with the links
    ``last.dcp`` and ``best.dcp`` to them (the names are :class:`scorch.rundir.layout.CheckpointFiles`').
    Only rank 0 writes files (every rank writes its shards); every rank may load."""

    def __init__(self, directory: str | os.PathLike, keep: int = 1):
        self.files = CheckpointFiles(Path(directory))
        self.dir = self.files.dir
        self.keep = keep
        self.last = self.files.last
        self.best = self.files.best

    def kept(self) -> list[Path]:
        return self.files.kept()

    def write(self, state: dict[str, Any], step: int, best: bool) -> None:
        if self.keep > 1:
            path = self.files.step(step)
            save(path, state)
            _link_or_copy(path, self.last)
        else:
            save(self.last, state)
        if best:
            _link_or_copy(self.last, self.best)
        self._drop(self.files.last_sharded, best and self.files.best_sharded)
        self._prune()

    def write_sharded(self, backend: Any, save_shards: Callable[[Path], list[str]], rest: dict[str, Any] | None,
                      step: int, best: bool) -> list[str]:
        """A sharded checkpoint, atomically: every rank writes its shards (``save_shards(directory)``,
        collective) into a temporary directory, then rank 0 the rest (``rest``) beside them, renames
        it to a new ``step-*.dcp`` and points ``last.dcp`` (and ``best.dcp``) at it; a crash at any
        point leaves the previous checkpoint as it was. Called on every rank; returns the names of
        weights that are not finite (then nothing is written)."""
        rank0 = backend.rank == 0
        final = self.files.step(step, sharded=True) if rank0 else None
        final = Path(backend.broadcast_object(str(final) if final is not None else None))
        tmp = final.with_name(f".{final.name}.tmp")
        if rank0:
            shutil.rmtree(tmp, ignore_errors=True)  # an earlier save of this name that crashed
            tmp.mkdir(parents=True)
        backend.barrier()
        bad = save_shards(tmp)
        if rank0:
            if bad:
                shutil.rmtree(tmp, ignore_errors=True)
                return bad
            assert rest is not None
            save(tmp / layout.REST, rest)
            os.replace(tmp, final)
            _fsync_dir(self.dir)
            _point(self.files.last_sharded, final)
            if best:
                _point(self.files.best_sharded, final)
            self._drop(self.last, best and self.best)
            self._prune()
        return bad

    def _drop(self, last: Path, best: Path | bool) -> None:
        """Remove the other kind's last (and best, where a new best was written): one kind at a time."""
        for path in (last, best):
            if isinstance(path, Path) and os.path.lexists(path):
                path.unlink()

    def _prune(self) -> None:
        """Keep the newest ``keep`` step checkpoints, and the directories last.dcp and best.dcp point
        at (last.pt and best.pt are links of their own: their data stays when a step file goes)."""
        held = {p.resolve() for p in (self.files.last_sharded, self.files.best_sharded) if p.is_symlink()}
        for stale in self.dir.glob(f".{layout.STEP_PREFIX}*{layout.SHARDED_SUFFIX}.tmp"):  # saves that crashed
            shutil.rmtree(stale, ignore_errors=True)
        for old in self.kept()[self.keep:]:
            if old.resolve() in held:
                continue
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()

    def load_latest(self, whole: bool = True) -> dict[str, Any]:
        """``last``, or else the newest kept checkpoint that loads (saying so). ``whole``: see :func:`load`."""
        last = self.files.latest()
        candidates = [last, *[p for p in self.kept() if not (last.exists() and p.resolve() == last.resolve())]]
        errors = []
        for path in candidates:
            try:
                state = load(path, whole)
            except ScorchError as exc:
                errors.append(str(exc))
                continue
            if errors:
                log.warning("%s; resuming from %s instead (epoch %s, step %s)", errors[0], path, state["epoch"], state["step"])
            return state
        if len(errors) == 1:
            raise ScorchError(errors[0])
        raise ScorchError(f"no usable checkpoint in {self.dir}: " + "; ".join(errors))


def _point(link: Path, target: Path) -> None:
    """Make ``link`` a relative symbolic link to ``target`` (a sibling) atomically."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target.name, tmp)
    if link.is_dir() and not link.is_symlink():  # a copy that followed the link (cp -rL, shutil.copytree)
        shutil.rmtree(link)
    os.replace(tmp, link)
    _fsync_dir(link.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
