"""scorch.gen: generate dataset samples with SLURM or local processes, and cache them.

In a ``datasets.py``::

    import numpy as np
    import scorch.gen

    class NoisySineParams(scorch.gen.Params):
        left = -1.0
        right = 1.0
        std_dev = 0.1

    @scorch.gen.generator(50, NoisySineParams, memory="1GB", slurm_options="--qos=test")
    def noisy_sine(size, params):
        for x in np.random.uniform(params.left, params.right, size=size):
            yield x, np.sin(x) + np.random.normal(scale=params.std_dev)

then ``scorch-gen generate noisy_sine -n 1000 --jobs 40 --time 5``,
``scorch-gen move noisy_sine 800 train`` and, in Python,
``X, y = Cache(".")["noisy_sine"][0]["train"].get(800)``. See docs/gen.md.

``CachedDataset`` (the torch adapter) is imported on first use, so generator
jobs never pay for importing torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._cache import Cache, DatasetCache, GroupReader, ParamSetCache
from ._generator import generator
from ._params import Params
from .errors import GenError, NotEnoughSamples

if TYPE_CHECKING:
    from ._torch import CachedDataset

__all__ = ["Params", "generator", "Cache", "CachedDataset", "DatasetCache", "ParamSetCache",
           "GroupReader", "GenError", "NotEnoughSamples"]


def __getattr__(name: str) -> Any:
    if name == "CachedDataset":
        from ._torch import CachedDataset
        return CachedDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
