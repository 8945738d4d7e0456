"""Batches from user DataSets: collation per list position and rank sharding."""
from __future__ import annotations

import random
import sys
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler, get_worker_info
from torch.utils.data._utils.collate import default_collate

from .errors import ScorchError
from .userfiles import check_item

Batch = tuple[list[torch.Tensor], list[torch.Tensor]]


class ListCollate:
    """Collate ``(inputs, targets)`` items into ``([batched input_i], [batched target_j])``."""

    def __init__(self, where: str):
        self.where = where

    def __call__(self, items: Sequence[Any]) -> Batch:
        # Fast path: check the first item's structure and every item's list lengths (cheap);
        # anything else that is wrong makes default_collate raise, and then every item is
        # checked to say precisely what.
        inputs0, targets0 = check_item(items[0], self.where)
        n_in, n_tg = len(inputs0), len(targets0)
        try:
            if all(len(item[0]) == n_in and len(item[1]) == n_tg for item in items):
                return (
                    [default_collate([item[0][i] for item in items]) for i in range(n_in)],
                    [default_collate([item[1][j] for item in items]) for j in range(n_tg)],
                )
        except (TypeError, RuntimeError, IndexError, KeyError, ValueError):
            pass
        return self._checked(items)

    def _checked(self, items: Sequence[Any]) -> Batch:
        pairs = [check_item(item, self.where) for item in items]
        n_in, n_tg = len(pairs[0][0]), len(pairs[0][1])
        for inputs, targets in pairs:
            if len(inputs) != n_in or len(targets) != n_tg:
                raise ScorchError(
                    f"{self.where}: items have different list lengths ({n_in} inputs/{n_tg} targets vs "
                    f"{len(inputs)}/{len(targets)}), expected the same for every item"
                )
        try:
            inputs = [default_collate([p[0][i] for p in pairs]) for i in range(n_in)]
            targets = [default_collate([p[1][j] for p in pairs]) for j in range(n_tg)]
        except (TypeError, RuntimeError) as exc:
            raise ScorchError(
                f"{self.where}: cannot batch items ({exc}); expected tensors, arrays or numbers of one shape per position"
            ) from exc
        return inputs, targets


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...``: every sample on exactly one rank, no padding."""

    def __init__(self, length: int, rank: int, world_size: int):
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


class SeededBatch(list):  # type: ignore[type-arg]
    """A batch of dataset indices carrying the seed a DataLoader worker loads it with."""

    seed: int = 0


def batch_seed(epoch_seed: int, position: int) -> int:
    """Seed of the ``position``-th batch of an epoch (counted from the epoch's start)."""
    return (epoch_seed * 6364136223846793005 + position * 1442695040888963407 + 1) % (2**63)


class EpochBatches(Sampler[SeededBatch]):
    """This rank's batches of one epoch, each carrying the seed of its position in the epoch.

    A worker reseeds torch, ``random`` and numpy's global RNG with it before loading the batch
    (:class:`SeededItems`), so random augmentation depends on (seed, epoch, rank, batch
    position) only: not on which worker loads the batch, how many workers there are, or where
    the epoch (re)started, which makes a mid-epoch resume with workers exact."""

    def __init__(self, sampler: DistributedSampler, batch_size: int):
        self.sampler, self.batch_size = sampler, batch_size
        self.epoch_seed = 0
        self.skip_batches = 0  # > 0: the epoch starts after that many batches (a mid-epoch resume)

    def __iter__(self) -> Iterator[SeededBatch]:
        indices = list(self.sampler)
        for b in range(self.skip_batches, len(self) + self.skip_batches):
            batch = SeededBatch(indices[b * self.batch_size:(b + 1) * self.batch_size])
            batch.seed = batch_seed(self.epoch_seed, b)
            yield batch

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size) - self.skip_batches


def reseed(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed([seed & 0xFFFFFFFF, seed >> 32])


class SeededItems:
    """A user DataSet behind a DataLoader: in a worker, each batch is loaded after reseeding the
    global RNGs with the batch's seed; in the main process (``--workers 0``) the RNGs are left
    alone (their state is in every checkpoint)."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    def __getitems__(self, batch: Sequence[int]) -> list[Any]:
        seed = getattr(batch, "seed", None)
        if seed is not None and get_worker_info() is not None:
            reseed(seed)
        if hasattr(self.dataset, "__getitems__"):  # the user's own batched loading
            return list(self.dataset.__getitems__(list(batch)))
        return [self.dataset[i] for i in batch]


def train_loader(
    dataset: Any, batch_size: int, rank: int, world_size: int, seed: int, workers: int, pin_memory: bool, where: str
) -> DataLoader:
    """Shuffled and sharded; call ``set_epoch(loader, epoch)`` before each epoch."""
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False)
    return DataLoader(
        SeededItems(dataset),
        batch_sampler=EpochBatches(sampler, batch_size),
        num_workers=workers,
        collate_fn=ListCollate(where),
        pin_memory=pin_memory,
        persistent_workers=False,  # workers re-seeded per epoch, for exact resume
        generator=torch.Generator(),
    )


def eval_loader(dataset: Any, batch_size: int, rank: int, world_size: int, workers: int, pin_memory: bool, where: str) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset), rank, world_size),
        num_workers=workers,
        collate_fn=ListCollate(where),
        pin_memory=pin_memory,
        persistent_workers=False,  # workers re-seeded per epoch, for exact resume
        generator=torch.Generator(),
    )


def set_epoch(loader: DataLoader, epoch: int, seed: int, rank: int, skip_batches: int = 0) -> None:
    """A new shuffle each epoch, and worker seeds that depend only on (seed, epoch, rank),
    so a resumed run draws exactly what an uninterrupted one would. ``skip_batches``: start
    the epoch after that many batches (a mid-epoch resume)."""
    epoch_seed = (seed * 1_000_003 + epoch * 1009 + rank) % (2**63)
    batches = loader.batch_sampler
    assert isinstance(batches, EpochBatches) and loader.generator is not None
    batches.sampler.set_epoch(epoch)
    batches.epoch_seed, batches.skip_batches = epoch_seed, skip_batches
    loader.generator.manual_seed(epoch_seed)


def to_device(batch: Batch, device: torch.device, non_blocking: bool) -> Batch:
    inputs, targets = batch
    return (
        [t.to(device, non_blocking=non_blocking) if isinstance(t, torch.Tensor) else t for t in inputs],
        [t.to(device, non_blocking=non_blocking) if isinstance(t, torch.Tensor) else t for t in targets],
    )


def batch_len(batch: Batch) -> int:
    for part in (batch[1], batch[0]):
        for t in part:
            if isinstance(t, torch.Tensor) and t.dim() > 0:
                return int(t.shape[0])
            if isinstance(t, (list, tuple)):
                return len(t)
    raise ScorchError("cannot tell the batch size: no input or target has a batch dimension")
