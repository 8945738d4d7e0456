"""Checkpoints: plain dicts of tensors and numbers, written atomically, loaded with weights_only.

Keys: ``model`` (the Network's plain state_dict), ``optimizer``, ``scheduler``, ``scaler``,
``epoch`` (completed epochs), ``step`` (optimizer steps), ``rng`` (one entry per rank),
``config`` and ``loop`` (early-stopping and best-value state), ``format`` (version).
"""
from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._atomic import atomic_open
from .errors import ScorchError

FORMAT = 1


def save(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a crash leaves the old file intact.

    torch's zip writer reports a failed write (a full disk) only as "unexpected pos"; the file
    object remembers the OSError behind it, which is what we raise."""
    with atomic_open(path, "wb") as f:
        recorder = _WriteErrors(f)
        try:
            torch.save({"format": FORMAT, **state}, recorder)
        except RuntimeError:
            if recorder.error is not None:
                raise recorder.error from None
            raise


class _WriteErrors:
    """A writable file that keeps the first OSError its writes raised."""

    def __init__(self, f: Any):
        self.f, self.error = f, None

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


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects; one clear error if unusable."""
    path = Path(path)
    if not path.is_file():
        raise ScorchError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unpickling refused"
        raise ScorchError(f"checkpoint {path} was refused: it holds objects other than tensors and plain data ({first})") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ScorchError(f"checkpoint {path} is truncated or corrupt ({first})") from exc
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise ScorchError(f"checkpoint {path} is not a scorch checkpoint (no 'model'/'epoch' keys)")
    return state


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
        import shutil

        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


class CheckpointDir:
    """``checkpoints/``: ``last.pt``, ``best.pt`` and, with ``keep`` > 1, the newest ``keep``
    checkpoints as ``step-NNNNNNNNN.pt`` (last.pt and best.pt are hard links to them, so each
    checkpoint is written once). Only rank 0 writes; every rank may load."""

    def __init__(self, directory: str | os.PathLike, keep: int = 1):
        self.dir = Path(directory)
        self.keep = keep
        self.last = self.dir / "last.pt"
        self.best = self.dir / "best.pt"

    def kept(self) -> list[Path]:
        return sorted(self.dir.glob("step-*.pt"), reverse=True)

    def write(self, state: dict[str, Any], step: int, best: bool) -> None:
        if self.keep > 1:
            path = self.dir / f"step-{step:09d}.pt"
            save(path, state)
            _link_or_copy(path, self.last)
            for old in self.kept()[self.keep:]:
                old.unlink()
        else:
            save(self.last, state)
        if best:
            _link_or_copy(self.last, self.best)

    def load_latest(self) -> dict[str, Any]:
        """``last.pt``, or else the newest kept checkpoint that loads (saying so)."""
        import logging

        log = logging.getLogger(__name__)
        candidates = [self.last, *[p for p in self.kept() if not (self.last.exists() and p.samefile(self.last))]]
        errors = []
        for path in candidates:
            try:
                state = load(path)
            except ScorchError as exc:
                errors.append(str(exc))
                continue
            if errors:
                log.warning("%s; resuming from %s instead (epoch %s, step %s)", errors[0], path, state["epoch"], state["step"])
            return state
        if len(errors) == 1:
            raise ScorchError(errors[0])
        raise ScorchError(f"no usable checkpoint in {self.dir}: " + "; ".join(errors))
