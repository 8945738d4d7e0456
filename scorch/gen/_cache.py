"""Reading cached samples: ``Cache(path)[name][params][group].get(n)``."""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._generator import load_datasets_file
from ._npz import read_rows
from ._params import Params, canonical_json, format_values, param_id
from ._store import UNASSIGNED, ParamSetDir, cache_root, list_datasets, list_param_sets, read_chunk
from .errors import GenError, NotEnoughSamples

log = logging.getLogger(__name__)
_RETRIES = 5


class Cache:
    """The samples generated for the ``datasets.py`` in *path* (under ``path/gen_cache``).

    Reading runs no code found in the data directory. Only a parameter set given as a dict of
    non-default values needs the generator's defaults: pass ``datasets`` (the ``datasets.py``
    to import, e.g. ``Cache(path, datasets=path + "/datasets.py")``) to resolve them; without
    it a dict is matched against the values stored with each parameter set.
    """

    def __init__(self, path: str | os.PathLike = ".", datasets: str | os.PathLike | None = None) -> None:
        self.path = Path(path).resolve()
        self.generators_file = Path(datasets).resolve() if datasets is not None else None

    def datasets(self) -> list[str]:
        """Names of the datasets with samples."""
        return list_datasets(self.path)

    def __getitem__(self, name: str) -> DatasetCache:
        if name not in self.datasets():
            raise GenError(f"no samples of dataset {name!r} in {cache_root(self.path)}; "
                           f"datasets with samples: {', '.join(self.datasets()) or '(none)'}")
        return DatasetCache(self.path, name, self.generators_file)

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r})"


class DatasetCache:
    """One dataset; index it by parameter set: position, id, dict of values or Params."""

    def __init__(self, path: Path, name: str, generators_file: Path | None = None) -> None:
        self.path, self.name, self.generators_file = path, name, generators_file

    def param_sets(self) -> list[ParamSetCache]:
        """Parameter sets, oldest first (the order ``scorch-gen list`` numbers them in)."""
        return [ParamSetCache(self.name, ps) for ps in list_param_sets(self.path, self.name)]

    def __getitem__(self, key: int | str | Mapping[str, Any] | Params) -> ParamSetCache:
        sets = self.param_sets()
        if isinstance(key, bool):
            raise GenError(f"{self.name}[{key!r}]: expected an index, an id or a dict of parameters")
        if isinstance(key, int):
            if not -len(sets) <= key < len(sets):
                raise GenError(f"{self.name}[{key}]: there are {len(sets)} parameter sets "
                               f"(0..{len(sets) - 1}); see scorch-gen list")
            return sets[key]
        if isinstance(key, str):
            pid = key
        elif isinstance(key, Params):
            pid = key.param_id()
        elif isinstance(key, Mapping):
            pid = self._id_of(key, sets)
        else:
            raise GenError(f"{self.name}[{key!r}]: expected an index, an id or a dict of parameters")
        for ps in sets:
            if ps.param_id == pid:
                return ps
        raise GenError(f"{self.name}: no samples with parameter set {key!r} (id {pid}); "
                       f"sets with samples: {', '.join(p.param_id for p in sets) or '(none)'}")

    def _id_of(self, values: Mapping[str, Any], sets: list[ParamSetCache]) -> str:
        """Id of non-default *values*: with the Params class of the generators file when one was
        given, else by matching the stored values (no code is imported)."""
        if self.generators_file is not None:
            specs = load_datasets_file(self.generators_file)
            if self.name not in specs:
                raise GenError(f"{self.generators_file} defines no dataset {self.name!r}; "
                               f"defined: {', '.join(sorted(specs))}")
            return specs[self.name].make_params(values).param_id()
        known = {k for ps in sets for k in ps.values}
        unknown = sorted(set(values) - known)
        if sets and unknown:
            raise GenError(f"{self.name}: unknown parameter(s) {', '.join(unknown)}; the stored parameter "
                           f"sets have {', '.join(sorted(known))}")
        matches = [ps for ps in sets if all(ps.values.get(k) == v for k, v in values.items())]
        if len(matches) == 1:
            return matches[0].param_id
        if not matches:
            return param_id(values)
        raise GenError(f"{self.name}: {format_values(values)} matches {len(matches)} parameter sets; "
                       "pass the id, or datasets= (the datasets.py whose defaults resolve it)")


class ParamSetCache:
    """One parameter set of one dataset; index it by group name."""

    def __init__(self, dataset: str, ps: ParamSetDir) -> None:
        self.dataset, self.dir = dataset, ps
        self.values: dict[str, Any] = ps.read_params().get("values", {})

    @property
    def param_id(self) -> str:
        return self.dir.param_id

    def counts(self) -> dict[str, int]:
        """Samples per group, ``unassigned`` first."""
        return self.dir.counts()

    def __getitem__(self, group: str) -> GroupReader:
        if group != UNASSIGNED:
            self.dir.group_dir(group)  # validates the name
        return GroupReader(self.dataset, self.dir, group)

    def __repr__(self) -> str:
        return f"<{self.dataset} [{self.param_id}] {canonical_json(self.values)}>"


class GroupReader:
    """The samples of one group, in the order they were moved there."""

    def __init__(self, dataset: str, ps: ParamSetDir, group: str) -> None:
        self.dataset, self.dir, self.group = dataset, ps, group

    def __len__(self) -> int:
        return self.dir.count(self.group)

    def get(self, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The first *n* samples (all when None) as ``(X, y)``; error if fewer exist."""
        arrays = self._read(n, ("X", "y"))
        return arrays["X"], arrays["y"]

    def ids(self, n: int | None = None) -> np.ndarray:
        """Unique ids of the first *n* samples (same order as ``get``)."""
        return self._read(n, ("uid",))["uid"]

    def times(self, n: int | None = None) -> np.ndarray:
        """Seconds spent generating each of the first *n* samples."""
        return self._read(n, ("time",))["time"]

    def _read(self, n: int | None, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        for _ in range(_RETRIES):  # unassigned chunks may be claimed while we read
            try:
                return self._read_once(n, keys)
            except FileNotFoundError:
                continue
        return self._read_once(n, keys)

    def _read_once(self, n: int | None, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        directory = self.dir.group_dir(self.group)
        chunks = self.dir.chunks(self.group)
        total = sum(c for _, c in chunks)
        if n is None:
            n = total
        if n < 0:
            raise GenError(f"get({n}): expected a number of samples >= 0")
        if n > total:
            raise NotEnoughSamples(f"{self.dataset} [{self.dir.param_id}] group {self.group!r} "
                                   f"has {total} samples, {n} requested", total)
        if n == 0:
            return self._empty(chunks, keys)
        # Rows go straight from each file into one output array (see _npz).
        out: dict[str, np.ndarray] | None = None
        filled = 0
        for name, count in chunks:
            take = min(count, n - filled)
            if out is None and take == n:
                return read_rows(directory / name, keys, n, None, 0)
            if out is None:
                first = read_rows(directory / name, keys, 1, None, 0)
                out = {k: np.empty((n, *a.shape[1:]), dtype=a.dtype) for k, a in first.items()}
            read_rows(directory / name, keys, take, out, filled)
            filled += take
            if filled == n:
                break
        assert out is not None
        return out

    def _empty(self, chunks: list[tuple[str, int]], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        if not chunks:
            return {k: np.empty((0,)) for k in keys}
        arrays = read_chunk(self.dir.group_dir(self.group) / chunks[0][0], keys)
        return {k: a[:0] for k, a in arrays.items()}

    def __repr__(self) -> str:
        return f"<{self.dataset} [{self.dir.param_id}] {self.group!r}: {len(self)} samples>"
