"""Test DATASET_FILE: after the pre-flight batch (8 items, which every rank checks before training and
whose errors the ranks compare), rank 1 raises on its first training item while every other rank is
busy in its own (a 10-minute load), so nothing but the launcher can end them promptly: no collective is under
way in which they would notice rank 1 is gone (as NCCL ranks may not)."""
import time

import torch

from scorch import distributed as dist


class DataSet:
    def __init__(self, path, mode="train"):
        g = torch.Generator().manual_seed(0)
        self.mode = mode
        self.x = torch.randn(32, 4, generator=g)
        self.y = torch.randint(0, 3, (32,), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.calls = getattr(self, "calls", 0) + 1
        if self.mode == "train" and self.calls > 8:
            if dist.rank() == 1:
                raise OSError(f"disk read failed on item {i}")
            time.sleep(600)
        return [self.x[i]], [self.y[i]]
