"""A torch ``Dataset`` over cached samples (imported lazily: the generators need no torch)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ._cache import Cache
from ._params import Params


class CachedDataset(Dataset):
    """``(x, y)`` tensors of the first *n* samples of one cached group.

    ``CachedDataset("examples/gen", "noisy_sine", 0, "train", n=800)`` reads
    the samples once (one ``Cache.get``) and serves rows from memory.
    *dtype* casts floating arrays (e.g. ``torch.float32`` for training); *datasets* is the
    generators file that resolves a dict of *params* (see ``Cache``).
    """

    def __init__(self, path: str | os.PathLike, name: str,
                 params: int | str | Mapping[str, Any] | Params = 0, group: str = "train",
                 n: int | None = None, dtype: torch.dtype | None = torch.float32,
                 datasets: str | os.PathLike | None = None) -> None:
        X, y = Cache(path, datasets)[name][params][group].get(n)
        self._set(X, y, dtype)

    @classmethod
    def from_arrays(cls, X: np.ndarray, y: np.ndarray,
                    dtype: torch.dtype | None = torch.float32) -> CachedDataset:
        """Wrap arrays already read with ``GroupReader.get``."""
        self = cls.__new__(cls)
        self._set(X, y, dtype)
        return self

    def _set(self, X: np.ndarray, y: np.ndarray, dtype: torch.dtype | None) -> None:
        self.X = _tensor(X, dtype)
        self.y = _tensor(y, dtype)

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[index], self.y[index]


def _tensor(array: np.ndarray, dtype: torch.dtype | None) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(dtype)
    return tensor
