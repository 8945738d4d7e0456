"""On-disk layout of the sample cache and the chunk files in it.

::

    DIR/gen_cache/<dataset>/<param_id>/
        params.json                 canonical values of this parameter set
        unassigned/<chunk>          samples not yet in a group
        groups/<group>/<chunk>      samples moved to a group (never moved again)
        claims/{pending,committed,aborted}/<move>/   moves in flight (see _moves)
        tmp/                        chunk files being written; never counted
        logs/                       SLURM/local job output, sbatch scripts
        index.json                  cached per-file timing sums (derived; see _stats)

A chunk is an ``.npz`` written by ``np.savez`` (no pickles; read back with
``allow_pickle=False``) holding ``X``, ``y`` (one row per sample), ``time``
(seconds the generator spent on each sample) and ``uid`` (a unique id per
sample). Its name, ``<ns timestamp>-<uuid4 hex>.n<count>.npz``, is unique and
carries the sample count, so counting a group is one ``listdir`` and no file
is opened. Chunks are immutable: written under ``tmp/``, fsynced, then
renamed into place, so a killed writer leaves at most a temp file, which
matches no chunk name and is never counted.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from .._atomic import create_json_once, fsync_dir, write_temp
from .errors import GenError

CACHE_DIRNAME = "gen_cache"
UNASSIGNED = "unassigned"
ARRAYS = ("X", "y", "time", "uid")
CHUNK_RE = re.compile(r"^\d{19}-[0-9a-f]{32}\.n(?P<n>\d+)\.npz$")
_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TMP_STALE_SECONDS = 24 * 3600.0


def chunk_count(name: str) -> int | None:
    """Sample count encoded in a chunk file name, None if *name* is not a chunk."""
    match = CHUNK_RE.match(name)
    return int(match.group("n")) if match else None


def new_chunk_name(n: int, like: str | None = None) -> str:
    """A fresh, unique chunk name for *n* samples; sorts by creation time.

    With *like* (another chunk's name) it takes that chunk's timestamp, so it
    sorts in that chunk's place (the rest of a split chunk keeps its turn).
    """
    stamp = like.split("-", 1)[0] if like else f"{time.time_ns():019d}"
    return f"{stamp}-{uuid.uuid4().hex}.n{n}.npz"


def check_group_name(group: str) -> str:
    """*group* if it is a valid group name, else a GenError saying what is allowed."""
    if group == UNASSIGNED or not _GROUP_RE.match(group):
        raise GenError(f"group {group!r}: expected letters, digits, '_', '.', '-' "
                       f"(up to 64, not starting with '.' or '-'), and not {UNASSIGNED!r}")
    return group


def _under(name: str) -> property:
    """A read-only attribute: the path ``root / name``."""
    return property(lambda self: self.root / name, doc=f"``root / {name!r}``")


@dataclass(frozen=True)
class ParamSetDir:
    """Paths of one (dataset, parameter set) in the cache."""

    root: Path

    unassigned = _under(UNASSIGNED)
    groups_root = _under("groups")
    tmp = _under("tmp")
    logs = _under("logs")
    claims = _under("claims")
    params_file = _under("params.json")

    @property
    def param_id(self) -> str:
        return self.root.name

    def group_dir(self, group: str) -> Path:
        """Directory of *group* (``unassigned`` included)."""
        if group == UNASSIGNED:
            return self.unassigned
        return self.groups_root / check_group_name(group)

    def ensure(self, dataset: str, values: Mapping[str, Any]) -> None:
        """Create the directories and params.json (first writer wins; same content)."""
        for sub in (self.unassigned, self.groups_root, self.tmp, self.logs,
                    self.claims / "pending", self.claims / "committed", self.claims / "aborted"):
            sub.mkdir(parents=True, exist_ok=True)
        if not self.params_file.exists():
            create_json_once(self.params_file, {"dataset": dataset, "values": dict(values),
                                                "id": self.param_id, "created": time.time()})

    def read_params(self) -> dict[str, Any]:
        """Contents of params.json (``dataset``, ``values``, ``id``, ``created``)."""
        try:
            return json.loads(self.params_file.read_text())
        except (OSError, ValueError) as exc:
            raise GenError(f"{self.params_file}: unreadable ({exc}); the parameter set "
                           "directory is damaged") from exc

    def groups(self) -> list[str]:
        """Names of the groups that exist, sorted."""
        with contextlib.suppress(FileNotFoundError):
            return sorted(d.name for d in self.groups_root.iterdir()
                          if d.is_dir() and _GROUP_RE.match(d.name))
        return []

    def chunks(self, group: str) -> list[tuple[str, int]]:
        """``(file name, count)`` of the chunks in *group*, in creation order."""
        try:
            names = os.listdir(self.group_dir(group))
        except FileNotFoundError:
            return []
        found = [(name, chunk_count(name)) for name in names]
        return sorted((name, n) for name, n in found if n is not None)

    def count(self, group: str) -> int:
        """Samples in *group*, from the file names alone."""
        return sum(n for _, n in self.chunks(group))

    def counts(self) -> dict[str, int]:
        """``{"unassigned": k, group: k, ...}`` with unassigned first."""
        out = {UNASSIGNED: self.count(UNASSIGNED)}
        for group in self.groups():
            out[group] = self.count(group)
        return out

    def all_chunk_paths(self) -> Iterator[Path]:
        """Every counted chunk file of this parameter set."""
        for group in [UNASSIGNED, *self.groups()]:
            directory = self.group_dir(group)
            for name, _ in self.chunks(group):
                yield directory / name

    def clean_tmp(self, older_than: float = TMP_STALE_SECONDS) -> int:
        """Delete temp files left by killed writers (older than *older_than* s)."""
        removed = 0
        now = time.time()
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.tmp):
                with contextlib.suppress(FileNotFoundError):
                    if now - entry.stat().st_mtime > older_than:
                        os.unlink(entry.path)
                        removed += 1
        return removed


def cache_root(directory: str | Path) -> Path:
    """``DIR/gen_cache``."""
    return Path(directory).resolve() / CACHE_DIRNAME


def param_set_dir(directory: str | Path, dataset: str, pid: str) -> ParamSetDir:
    """The ParamSetDir of *dataset* / *pid* under ``DIR/gen_cache``."""
    return ParamSetDir(cache_root(directory) / dataset / pid)


def check_arrays(arrays: Mapping[str, np.ndarray]) -> None:
    """Refuse arrays that would need pickling (object dtype) or disagree in length."""
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) != 1:
        raise GenError(f"chunk arrays differ in length: "
                       f"{ {k: len(a) for k, a in arrays.items()} }")
    for key, array in arrays.items():
        if array.dtype.hasobject:
            raise GenError(f"samples' {key} has dtype object; yield numbers or numeric "
                           "arrays of one shape (scorch-gen never stores pickles)")


def _savez(arrays: Mapping[str, np.ndarray]) -> Callable[[IO[bytes]], None]:
    # Values as Any: numpy's stubs let **kwds fill savez's allow_pickle (a bool), so a mapping of
    # arrays does not type-check against them (the keys are the chunk's X, y, time and uid).
    named: Mapping[str, Any] = arrays

    def write(f: IO[bytes]) -> None:
        np.savez(f, **named)
    return write


def write_chunk_temp(directory: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write *arrays* as a synced temp ``.npz`` in *directory*; the caller renames it."""
    check_arrays(arrays)
    return write_temp(directory, _savez(arrays), suffix=".npz.tmp")


def publish_chunk(ps: ParamSetDir, arrays: Mapping[str, np.ndarray], group: str = UNASSIGNED) -> Path:
    """Write one chunk atomically into *group*: temp file in ``tmp/``, fsync, rename."""
    n = len(arrays["X"])
    tmp = write_chunk_temp(ps.tmp, arrays)
    final = ps.group_dir(group) / new_chunk_name(n)
    os.rename(tmp, final)
    fsync_dir(final.parent)
    return final


def read_chunk(path: Path, keys: tuple[str, ...] = ("X", "y")) -> dict[str, np.ndarray]:
    """Arrays *keys* of one chunk, loaded without pickle support."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in keys}


def list_datasets(directory: str | Path) -> list[str]:
    """Names of the datasets with a directory in the cache, sorted."""
    root = cache_root(directory)
    try:
        return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    except FileNotFoundError:
        return []


def list_param_sets(directory: str | Path, dataset: str) -> list[ParamSetDir]:
    """The parameter sets of *dataset* in the cache, oldest first (the index order)."""
    base = cache_root(directory) / dataset
    found = []
    with contextlib.suppress(FileNotFoundError):
        for d in base.iterdir():
            ps = ParamSetDir(d)
            if d.is_dir() and ps.params_file.is_file():
                found.append((ps.read_params().get("created", 0.0), d.name, ps))
    return [ps for _, _, ps in sorted(found, key=lambda t: (t[0], t[1]))]
