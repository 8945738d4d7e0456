"""DATASET_FILE: points of an 8-Gaussian ring, generated (nothing is downloaded).

Each sample is a point of the ring and the generator's noise for it, both drawn from the sample's
index with a fixed seed, so that a sample is the same however the epoch falls over ranks and
micro-batches (the generator's draws do not depend on the world size): ``([point, noise], [point])``.
"""
import math

import torch


class DataSetIndex:
    def __init__(self, path=None, n_train=999, n_valid=201, radius=2.0, spread=0.05, noise_dim=2):
        # 999 and 201: sizes no world size above 1 divides, on purpose (every sample counts once).
        self.points, self.noise = {}, {}
        for k, (mode, n) in enumerate((("train", n_train), ("valid", n_valid), ("test", n_valid))):
            g = torch.Generator().manual_seed(1234 + k)
            mode_of = torch.randint(0, 8, (n,), generator=g)
            angle = mode_of.to(torch.float32) * (2 * math.pi / 8)
            centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
            self.points[mode] = centres + spread * torch.randn(n, 2, generator=g)
            self.noise[mode] = torch.randn(n, noise_dim, generator=g)


class DataSet:
    def __init__(self, ds_index, mode="train"):
        self.points, self.noise = ds_index.points[mode], ds_index.noise[mode]

    def __len__(self):
        return len(self.points)

    def __getitem__(self, i):
        return [self.points[i], self.noise[i]], [self.points[i]]
