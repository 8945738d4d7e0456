"""DATASET_FILE shared by every variant of the bench: synthetic, generated in memory.

Inputs are Gaussian (``in_features`` numbers, or 3 x ``image_size`` x ``image_size`` images);
the label is the argmax of a fixed random projection, so there is something to learn.
Items come from tensors already in memory, so data loading costs the same small amount in
every variant and the loops themselves are what is compared; with ``augment=True`` (images only)
each training item is augmented in ``__getitem__`` from torch's global RNG as a user's dataset
does it (a small rotation and scaling, a random crop of the reflection-padded image, a horizontal flip, brightness and noise),
which makes data loading (in DataLoader workers) a real part of the step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class DataSetIndex:
    def __init__(self, path: str | None = None, n_train: int = 16384, n_valid: int = 4096, in_features: int = 32,
                 image_size: int = 0, classes: int = 10, seed: int = 1234, augment: bool = False):
        g = torch.Generator().manual_seed(seed)
        n = n_train + n_valid
        shape = (n, 3, image_size, image_size) if image_size > 0 else (n, in_features)
        self.x = torch.randn(shape, generator=g)
        flat = self.x.reshape(n, -1)
        projection = torch.randn(flat.shape[1], classes, generator=g)
        self.y = (flat @ projection).argmax(dim=1)
        self.ranges = {"train": range(n_train), "valid": range(n_train, n), "test": range(n_train, n)}
        self.augment = augment and image_size > 0


class DataSet:
    def __init__(self, ds_index: DataSetIndex, mode: str = "train"):
        self.index, self.ids = ds_index, ds_index.ranges[mode]
        self.augment = ds_index.augment and mode == "train"

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        j = self.ids[i]
        x = self.index.x[j]
        if self.augment:
            x = augment(x)
        return [x], [self.index.y[j]]


def augment(x: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """A small random rotation and scaling, a random crop of the reflection-padded image, a flip,
    brightness and Gaussian noise (what a torchvision pipeline for CIFAR-sized images does)."""
    angle = (torch.rand(()) - 0.5) * 0.35  # about +-10 degrees
    scale = 0.9 + 0.2 * torch.rand(())
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(())]), torch.stack([sin, cos, torch.zeros(())])])
    grid = F.affine_grid(theta.unsqueeze(0), [1, *x.shape], align_corners=False)
    x = F.grid_sample(x.unsqueeze(0), grid, padding_mode="reflection", align_corners=False)[0]
    h, w = x.shape[-2:]
    padded = F.pad(x.unsqueeze(0), (pad, pad, pad, pad), mode="reflect")[0]
    dy, dx = torch.randint(0, 2 * pad + 1, (2,)).tolist()
    x = padded[:, dy:dy + h, dx:dx + w]
    if torch.rand(()) < 0.5:
        x = x.flip(-1)
    return x * (0.8 + 0.4 * torch.rand(())) + 0.1 * torch.randn_like(x)
