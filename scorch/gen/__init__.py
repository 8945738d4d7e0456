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
``X, y = Cache(".")["noisy_sine"][0]["train"].get(800)``. See docs/gen.md. Reading
never imports ``datasets.py`` unless asked to (``Cache(path, datasets=...)``).

``CachedDataset`` (the torch adapter) is imported on first use, so generator
jobs never pay for importing torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._cache import Cache, DatasetCache, GroupReader, ParamSetCache
from ._generate import GenerateOutcome, GenerateRequest, generate, resolve
from ._generator import generator
from ._moves import move
from ._params import Params, format_values, parse_params_literal
from ._report import NeedReport, ParamSetRow, list_rows, need
from ._store import UNASSIGNED, ParamSetDir, check_group_name, param_set_dir, publish_chunk
from ._timing import format_duration
from .errors import GenError, JobsFailed, NotEnoughSamples

if TYPE_CHECKING:
    from ._torch import CachedDataset

__all__ = [
    "UNASSIGNED",
    "Cache",
    "CachedDataset",
    "DatasetCache",
    "GenError",
    "GenerateOutcome",
    # the commands of scorch-gen (generate, list, move, need) and what they report
    "GenerateRequest",
    "GroupReader",
    "JobsFailed",
    "NeedReport",
    "NotEnoughSamples",
    "ParamSetCache",
    # the store, for tools that fill a cache themselves (bench/gen_cache.py)
    "ParamSetDir",
    "ParamSetRow",
    # datasets.py and reading samples
    "Params",
    "check_group_name",
    "format_duration",
    "format_values",
    "generate",
    "generator",
    "list_rows",
    "move",
    "need",
    "param_set_dir",
    "parse_params_literal",
    "publish_chunk",
    "resolve",
]


def __getattr__(name: str) -> Any:
    if name == "CachedDataset":
        from ._torch import CachedDataset  # on first use: see the module docstring (torch)
        return CachedDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
