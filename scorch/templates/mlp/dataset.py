"""DATASET_FILE for scorch, written by `scorch-init` (template mlp): a generated classification problem (no download).

Replace the generated points in ``DataSetIndex`` with your own data: ``--dataset-path PATH``
arrives there as ``path``. The contract: ``DataSet(ds_index, mode)`` with ``__len__`` and
``__getitem__``; ``DataSetIndex(path)`` is optional.
"""
import numpy as np
import torch

SIZES = {"train": 2000, "valid": 500, "test": 500}


class DataSetIndex:
    """Built once per run and shared by every mode: load (or index) the data here."""

    def __init__(self, path=None, n_features=16, n_classes=4, seed=0):
        # `path` is --dataset-path; this template ignores it and draws points around
        # `n_classes` random centres instead (the same points every time, from `seed`).
        rng = np.random.RandomState(seed)
        n = sum(SIZES.values())
        centres = rng.randn(n_classes, n_features)
        labels = rng.randint(n_classes, size=n)
        points = centres[labels] + 1.8 * rng.randn(n, n_features)
        self.x = torch.tensor(points, dtype=torch.float32)
        self.y = torch.tensor(labels, dtype=torch.int64)
        # Disjoint, fixed ranges of samples per mode.
        ends = np.cumsum(list(SIZES.values()))
        self.ids = {mode: np.arange(end - size, end) for (mode, size), end in zip(SIZES.items(), ends)}


class DataSet:
    def __init__(self, ds_index, mode):
        # mode is "train", "valid" or "test"; a valid set of length 0 means no validation.
        self.x, self.y = ds_index.x, ds_index.y
        self.ids = ds_index.ids[mode]

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        j = self.ids[i]
        # Random augmentation goes here; draw it from torch's, numpy's or `random`'s global RNG
        # (e.g. `x = x + 0.1 * torch.randn_like(x)`), which scorch seeds per batch, so a resumed
        # run draws exactly what an uninterrupted one would.
        # ([inputs...], [targets...]): scorch batches each position separately, so every
        # item must have the same number of inputs and targets, each of one shape and dtype.
        return [self.x[j]], [self.y[j]]
