"""DATASET_FILE shared by every variant of the bench: synthetic, generated in memory.

Inputs are Gaussian (``in_features`` numbers, or 3 x ``image_size`` x ``image_size`` images);
the label is the argmax of a fixed random projection, so there is something to learn.
Items come from tensors already in memory, so data loading costs the same small amount in
every variant and the loops themselves are what is compared.
"""
from __future__ import annotations

import torch


class DataSetIndex:
    def __init__(self, path: str | None = None, n_train: int = 16384, n_valid: int = 4096, in_features: int = 32,
                 image_size: int = 0, classes: int = 10, seed: int = 1234):
        g = torch.Generator().manual_seed(seed)
        n = n_train + n_valid
        shape = (n, 3, image_size, image_size) if image_size > 0 else (n, in_features)
        self.x = torch.randn(shape, generator=g)
        flat = self.x.reshape(n, -1)
        projection = torch.randn(flat.shape[1], classes, generator=g)
        self.y = (flat @ projection).argmax(dim=1)
        self.ranges = {"train": range(n_train), "valid": range(n_train, n), "test": range(n_train, n)}


class DataSet:
    def __init__(self, ds_index: DataSetIndex, mode: str = "train"):
        self.index, self.ids = ds_index, ds_index.ranges[mode]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        j = self.ids[i]
        return [self.index.x[j]], [self.index.y[j]]
