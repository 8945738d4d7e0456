"""MODEL_FILE shared by every variant of the bench: scorch loads it with ``--model``, the
hand-written loops and Lightning import it, so all of them train the very same Network.

Each training forward (``self.training`` with gradients on) appends ``time.perf_counter()``
to ``STAMPS``; with ``BENCH_STAMPS=PATH`` set, the process writes them to ``PATH.rank<R>.json``
when it exits. Epoch ``e`` runs from stamp ``e*S`` to stamp ``(e+1)*S`` (S = steps per epoch),
so a time between stamps holds everything a runner does between two epochs' first steps:
the steps, validation, history, TensorBoard, checkpoints, progress bar. The cost of the
stamp itself (one ``perf_counter`` and ``list.append``) is the same for every variant.

Only torch is imported here: the Lightning environment has no scorch.
"""
from __future__ import annotations

import atexit
import itertools
import json
import os
import resource
import time

import torch
import torch.nn.functional as F
from torch import nn

STAMPS: list[float] = []
FAULTS: list[int] = []  # minor page faults of the process so far, at each stamp
FIRST_WALL: list[float] = []  # time.time() of the first training step (start-up)


def _rank() -> int:
    for name in ("OMPI_COMM_WORLD_RANK", "RANK", "PMI_RANK", "SLURM_PROCID"):
        if os.environ.get(name):
            return int(os.environ[name])
    return 0


def _dump() -> None:
    path = os.environ.get("BENCH_STAMPS")
    if not path:
        return
    with open(f"{path}.rank{_rank()}.json", "w") as f:
        json.dump({"stamps": STAMPS, "faults": FAULTS, "first_wall": FIRST_WALL[0] if FIRST_WALL else None,
                   "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   "children_maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                   "cuda_max_allocated": torch.cuda.max_memory_allocated() if torch.cuda.is_initialized() else None}, f)


atexit.register(_dump)


class Block(nn.Module):
    """A ResNet basic block (two 3x3 convolutions, batch norm, a shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.short(x))


def small_cnn(classes: int, width: int) -> nn.Module:
    """Three 3x3 convolutions with batch norm (width, 2 width, 4 width channels) for 3x32x32 images."""
    layers: list[nn.Module] = []
    cin = 3
    for i, cout in enumerate((width, 2 * width, 4 * width)):
        layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        if i < 2:
            layers.append(nn.MaxPool2d(2))
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes))


def resnet18(classes: int) -> nn.Module:
    """ResNet-18 for 3x32x32 images (CIFAR layout, ~11 M parameters), plain torch.nn."""
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes)]
    return nn.Sequential(*layers)


@torch.compiler.disable  # run as Python under --compile too (traced, the clock would be a constant)
def _stamp() -> None:
    now = time.perf_counter()
    if not STAMPS:
        FIRST_WALL.append(time.time())
    STAMPS.append(now)
    FAULTS.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


class Network(nn.Module):
    def __init__(self, kind: str = "mlp", in_features: int = 32, width: int = 128, depth: int = 2, classes: int = 10):
        super().__init__()
        if kind == "resnet18":
            self.body = resnet18(classes)
        elif kind == "cnn":
            self.body = small_cnn(classes, width)
        else:
            sizes = [in_features] + [width] * depth
            layers: list[nn.Module] = []
            for a, b in itertools.pairwise(sizes):
                layers += [nn.Linear(a, b), nn.ReLU()]
            self.body = nn.Sequential(*layers, nn.Linear(sizes[-1], classes))

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.training and torch.is_grad_enabled():
            _stamp()
        (x,) = inputs
        return [self.body(x)]


def criterion(preds: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(preds[0], targets[0])


def accuracy(preds: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    return (preds[0].argmax(dim=1) == targets[0]).float().mean()


class Socket:
    def __init__(self, model: Network):
        self.trainable_modules = nn.ModuleList([model.body])

    def criterion(self, preds: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
        return criterion(preds, targets)

    def metrics(self, preds: list[torch.Tensor], targets: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"accuracy": accuracy(preds, targets)}
