"""Batches from user DataSets: collation per list position and rank sharding."""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.context
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import resource_tracker
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info
from torch.utils.data._utils.collate import default_collate

from .contract.userfiles import USER_MODULES, check_item, import_user_modules
from .errors import STOP_SIGNALS, ScorchError

log = logging.getLogger(__name__)

Batch = tuple[list[torch.Tensor], list[torch.Tensor]]


class ListCollate:
    """Collate ``(inputs, targets)`` items into ``([batched input_i], [batched target_j])``."""

    def __init__(self, where: str):
        self.where = where

    def __call__(self, items: Sequence[Any]) -> Batch:
        try:
            return self._collate(items)
        except BatchError:
            raise
        except ScorchError as exc:  # one line also from a DataLoader worker (see _FromWorker)
            raise BatchError(str(exc)) from None

    def _collate(self, items: Sequence[Any]) -> Batch:
        # Fast path: check the first item's structure and every item's list lengths (cheap);
        # anything else that is wrong makes default_collate raise, and then every item is
        # checked to say precisely what.
        inputs0, targets0 = check_item(items[0], self.where)
        n_in, n_tg = len(inputs0), len(targets0)
        batch: Batch | None = None
        try:
            if all(len(item[0]) == n_in and len(item[1]) == n_tg for item in items):
                batch = (
                    [default_collate([item[0][i] for item in items]) for i in range(n_in)],
                    [default_collate([item[1][j] for item in items]) for j in range(n_tg)],
                )
        except (TypeError, RuntimeError, IndexError, KeyError, ValueError):
            pass
        if batch is not None:
            self._one_dtype(items, n_in, n_tg)
        return self._tensors(batch if batch is not None else self._checked(items))

    def _one_dtype(self, items: Sequence[Any], n_in: int, n_tg: int) -> None:
        """Tensors (or arrays) of different dtypes at one position batch into the wider dtype, which
        then fails in the model's forward: it is the dataset's fault, said here."""
        for what, part, n in (("inputs", 0, n_in), ("targets", 1, n_tg)):
            for i in range(n):
                first = items[0][part][i]
                cls, dtype = type(first), getattr(first, "dtype", None)
                if all(type(v := item[part][i]) is cls and getattr(v, "dtype", None) == dtype for item in items):
                    continue  # the usual case: one type and dtype (~6 µs for 64 items; naming each: ~40)
                kinds = {kind for item in items if (kind := _dtype(item[part][i])) is not None}
                if len(kinds) > 1:
                    raise ScorchError(f"{self.where} returned {' and '.join(sorted(kinds))} values at {what} position {i} "
                                      "in one batch; expected one dtype per position")

    def _tensors(self, batch: Batch) -> Batch:
        """A position that did not batch into a tensor (strings, say) is the dataset's fault, not forward's."""
        for what, part in (("inputs", batch[0]), ("targets", batch[1])):
            for i, value in enumerate(part):
                if not isinstance(value, torch.Tensor):
                    first = value[0] if isinstance(value, (list, tuple)) and value else value
                    raise ScorchError(f"{self.where} returned {type(first).__name__} values at {what} position {i}; "
                                      "expected tensors, arrays or numbers")
        return batch

    def _checked(self, items: Sequence[Any]) -> Batch:
        pairs = [check_item(item, self.where) for item in items]
        n_in, n_tg = len(pairs[0][0]), len(pairs[0][1])
        for inputs, targets in pairs:
            if len(inputs) != n_in or len(targets) != n_tg:
                raise ScorchError(
                    f"{self.where}: items have different list lengths ({n_in} inputs/{n_tg} targets vs "
                    f"{len(inputs)}/{len(targets)}), expected the same for every item"
                )
        self._one_shape(pairs, getattr(items, "indices", None))
        try:
            inputs = [default_collate([p[0][i] for p in pairs]) for i in range(n_in)]
            targets = [default_collate([p[1][j] for p in pairs]) for j in range(n_tg)]
        except (TypeError, RuntimeError) as exc:
            raise ScorchError(
                f"{self.where}: cannot batch items ({exc}); expected tensors, arrays or numbers of one shape per position"
            ) from exc
        return inputs, targets


    def _one_shape(self, pairs: list[tuple[list[Any], list[Any]]], indices: Sequence[int] | None) -> None:
        """Tensors or arrays of different shapes at one position do not stack: say which samples
        and shapes (in a worker, torch's own message is about resizing shared storage)."""
        for what, part in (("inputs", 0), ("targets", 1)):
            for i in range(len(pairs[0][part])):
                found = [_shape(p[part][i]) for p in pairs]
                if any(shape is None for shape in found):
                    continue
                shapes = [shape for shape in found if shape is not None]
                if len(set(shapes)) == 1:
                    continue
                k = next(j for j, shape in enumerate(shapes) if shape != shapes[0])
                name = (lambda j: f"sample {indices[j]}") if indices else (lambda j: f"item {j} of the batch")
                raise BatchError(f"{self.where} returned {what} of different shapes at position {i} in one batch: "
                                 f"{list(shapes[0])} ({name(0)}) and {list(shapes[k])} ({name(k)}); expected one "
                                 "shape per position (pad or crop them in the DataSet)")


class Items(list[Any]):
    """A batch's items, with the dataset indices they came from (for :class:`ListCollate`'s errors)."""

    def __init__(self, values: Sequence[Any] = (), indices: Sequence[int] = ()):
        super().__init__(values)
        self.indices = indices


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return tuple(shape) if isinstance(value, (torch.Tensor, np.ndarray)) and shape is not None else None


def _dtype(value: Any) -> str | None:
    """``float32 tensor``, ``int64 array``; None for anything else (numbers mix as Python's do)."""
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).replace('torch.', '')} tensor"
    return f"{value.dtype} array" if isinstance(value, np.ndarray) else None


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...``: every sample on exactly one rank, no padding."""

    def __init__(self, length: int, rank: int, world_size: int):
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


def _mix(*parts: int) -> int:
    """A 63-bit seed from integers (an LCG step per part)."""
    value = 0x5DEECE66D
    for part in parts:
        value = (value * 6364136223846793005 + part * 1442695040888963407 + 1) % (2**63)
    return value


def epoch_order(length: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of an epoch's samples: a function of (seed, epoch) only, never of the
    world size, so a run can go on from any sample position on any number of ranks."""
    generator = torch.Generator().manual_seed(_mix(seed, epoch))
    return torch.randperm(length, generator=generator).tolist()


@dataclass(frozen=True)
class Slot:
    """One micro-batch of one rank: its dataset indices and how its loss counts in its step."""

    indices: list[int]
    weight: float  # its loss is multiplied by this: count * world_size / samples of the step
    count: int  # real samples (0: a stand-in sample so that every rank runs every micro-step)
    last: bool  # the last micro-batch of its optimizer step: gradients are exchanged after it


class EpochPlan:
    """Which samples rank ``rank`` trains in each micro-batch of one epoch.

    The epoch's order is split into optimizer steps of ``global_batch`` samples (the last may be
    shorter), starting at sample ``start`` (a resumed epoch). A step's samples fill
    ``global_batch // micro_batch`` slots: ``micro_batch`` samples each, or, in a short last
    step, its samples spread as evenly as the slots allow with at least two in each slot used
    (a BatchNorm cannot train on one sample); the slots left over run a stand-in sample that
    counts nothing. Slot ``j`` of a step is micro-batch
    ``j // world_size`` of rank ``j % world_size``. So every rank runs the same number of
    micro-steps, every sample is trained exactly once per epoch (no padding), and a slot's
    samples and seed depend on (seed, epoch, global batch, micro-batch) only: 2 ranks with
    ``--batch-size 16`` train the slots of 1 rank with ``--batch-size 16 --accumulate 2``.
    A slot's loss is weighted by its share of the step's samples, so each step's gradient is
    the mean over exactly the samples of that step however they are spread over the ranks.
    """

    def __init__(self, length: int, global_batch: int, micro_batch: int, rank: int, world_size: int,
                 seed: int, epoch: int, start: int = 0):
        slots = global_batch // micro_batch
        if global_batch % micro_batch or slots % world_size:
            raise ValueError(f"global batch {global_batch} is not micro-batch {micro_batch} x {world_size} ranks x a whole number")
        self.length, self.global_batch, self.start = length, global_batch, start
        self.epoch_seed = _mix(seed, epoch, 1)
        self.accumulate = slots // world_size
        order = epoch_order(length, seed, epoch)
        self.slots: list[Slot] = []
        for base in range(start, length, global_batch):
            n_step = min(global_batch, length - base)
            used = max(1, min(slots, n_step // 2))  # no micro-batch of one sample while two fit (BatchNorm)
            full, extra = divmod(n_step, used)
            for a in range(self.accumulate):
                j = a * world_size + rank
                size = micro_batch if n_step == global_batch else (full + (j < extra) if j < used else 0)
                first = base + (j * micro_batch if n_step == global_batch else j * full + min(j, extra))
                last = a == self.accumulate - 1
                if size == 0:  # a short last step with fewer samples than slots
                    self.slots.append(Slot([order[base]], 0.0, 0, last))
                else:
                    self.slots.append(Slot(order[first:first + size], size * world_size / n_step, size, last))

    @property
    def steps(self) -> int:
        return len(self.slots) // self.accumulate

    def samples_after(self, steps: int) -> int:
        """Samples of the epoch trained once ``steps`` steps of this plan are done."""
        return min(self.length, self.start + steps * self.global_batch)


class SeededBatch(list):
    """A batch of dataset indices carrying the epoch's seed, from which a DataLoader worker seeds
    each of its samples (:func:`sample_seed`)."""

    seed: int = 0


def batch_seed(epoch_seed: int, position: int) -> int:
    """A seed from the epoch's seed and a position (a rank's RNG when a resume adds ranks)."""
    return _mix(epoch_seed, position)


def sample_seed(epoch_seed: int, index: int) -> int:
    """The seed a DataLoader worker loads sample ``index`` with in the epoch of ``epoch_seed``: the
    sample's augmentation depends on (seed, epoch, sample) alone, not on the micro-batch it falls
    in, which changes with the per-rank batch when a run moves to another world size."""
    return _mix(epoch_seed, index, 2)


class PlanBatches(Sampler[SeededBatch]):
    """The slots of the current :class:`EpochPlan`, as batches of indices carrying the epoch's seed.

    A worker reseeds torch, ``random`` and numpy's global RNGs before loading each sample, from
    (the epoch's seed, the sample's index) (:class:`SeededItems`), so random augmentation depends
    on (seed, epoch, sample) only: not on which worker loads it, how many workers or ranks there
    are, which micro-batch it is in, or where the epoch (re)started."""

    def __init__(self) -> None:
        self.plan: EpochPlan | None = None

    def __iter__(self) -> Iterator[SeededBatch]:
        assert self.plan is not None, "set_plan() before iterating"
        for slot in self.plan.slots:
            batch = SeededBatch(slot.indices)
            batch.seed = self.plan.epoch_seed
            yield batch

    def __len__(self) -> int:
        return len(self.plan.slots) if self.plan is not None else 0


def reseed(seed: int) -> None:
    torch.default_generator.manual_seed(seed)  # the CPU generator only: torch.manual_seed costs ~100x more
    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed([seed & 0xFFFFFFFF, seed >> 32])


def reseed_sample(seed: int) -> None:
    """:func:`reseed` for one sample, at its cheapest (~7 µs, against ~18): numpy takes a 32-bit seed
    (its array form costs 13 µs of the 18), ``random`` an int."""
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(seed & 0xFFFFFFFF)


class _FromWorker(ScorchError):
    """An error of the user's data, one line also when a DataLoader worker raised it: the
    DataLoader re-raises it in the rank with the worker's whole traceback as its message, and
    the line is taken back out of it."""

    def __init__(self, message: str):
        if "Original Traceback" in message:
            last = [line for line in message.strip().splitlines() if line.strip()][-1]
            message = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


class SampleError(_FromWorker):
    """A DataSet raised while loading a sample: one line naming the file, mode and index."""


class BatchError(_FromWorker):
    """A batch's samples do not collate (shapes, dtypes, structure): one line naming them."""


class _UserModules:
    """Pickled ahead of a user's dataset: unpickling it imports, by path, the user's files that the
    dataset's classes come from (its own and its attributes', e.g. the DataSetIndex), in a process that
    does not have them (:func:`scorch.contract.userfiles.import_user_modules`). Only those: another
    file this process loaded before (an earlier run, a load_run) may be gone, and is not the worker's."""

    def __init__(self, dataset: Any):
        names = {type(dataset).__module__, *(type(v).__module__ for v in getattr(dataset, "__dict__", {}).values())}
        self.modules = {name: USER_MODULES[name] for name in sorted(names) if name in USER_MODULES}

    def __reduce__(self) -> tuple[Any, ...]:
        return _imported, (self.modules,)


def _imported(modules: dict[str, tuple[str, str]]) -> None:
    import_user_modules(modules)


def _seeded_items(_: None, dataset: Any, where: str) -> SeededItems:
    return SeededItems(dataset, where)


class SeededItems(Dataset[Any]):
    """A user DataSet behind a DataLoader: in a worker, each sample is loaded after reseeding the
    global RNGs with its own seed (:func:`sample_seed`); in the main process (``--workers 0``) the RNGs are left
    alone (their state is in every checkpoint). An error names the file, mode and sample."""

    def __init__(self, dataset: Any, where: str):
        self.dataset, self.where = dataset, where

    def __reduce__(self) -> tuple[Any, ...]:
        # A worker started by spawn or forkserver unpickles the dataset in a fresh interpreter, where
        # the user's file (imported by path under a synthetic name) is unknown. The first argument
        # is unpickled first, and importing the user's files is what unpickling it does.
        return _seeded_items, (_UserModules(self.dataset), self.dataset, self.where)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])[0]

    def __getitems__(self, batch: Sequence[int]) -> list[Any]:
        seed: int | None = getattr(batch, "seed", None) if get_worker_info() is not None else None
        index = batch[0] if batch else None
        try:
            if hasattr(self.dataset, "__getitems__"):  # the user's own batched loading: one seed, its first sample's
                if seed is not None and index is not None:
                    reseed_sample(sample_seed(seed, index))
                return list(self.dataset.__getitems__(list(batch)))
            items = Items(indices=batch)
            for index in batch:
                if seed is not None:
                    reseed_sample(sample_seed(seed, index))
                items.append(self.dataset[index])
            return items
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise SampleError(f"{self.where} raised {type(exc).__name__}: {first} (sample {index})") from None


_WARNED_WORKERS: set[tuple[int, int]] = set()  # (workers, CPUs) this process has warned of


class Loader(DataLoader):
    """A DataLoader whose workers never see the stop signals meant for their rank.

    A launcher or scheduler often signals a rank's whole process group (mpirun forwarding SIGUSR1,
    SLURM's scancel, Ctrl-C in a terminal): a worker started by ``forkserver`` or ``spawn`` has no
    handler for them and would die, and so would the forkserver. So the workers (and a forkserver
    started for them) are created with those signals blocked, which they inherit; the rank blocks
    them only while it starts its workers, and one that arrives meanwhile is delivered to it then."""

    def check_worker_number_rationality(self) -> None:
        """torch's warning that there are more workers than CPUs, printed by every rank at every epoch,
        is scorch's one line instead, once per process, and on rank 0 only (the log of other ranks
        shows errors only)."""
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if self.num_workers > cpus and (self.num_workers, cpus) not in _WARNED_WORKERS:
            _WARNED_WORKERS.add((self.num_workers, cpus))
            log.warning("--workers %d: more DataLoader worker processes per rank than the %d CPU(s) this process may "
                        "use; fewer workers may load faster", self.num_workers, cpus)

    def __iter__(self) -> Any:
        if self.num_workers == 0 or threading.current_thread() is not threading.main_thread():
            return super().__iter__()
        forked = self.multiprocessing_context is None or self.multiprocessing_context.get_start_method() == "fork"
        if not forked:
            # Started here, not below: starting it unblocks SIGINT and SIGTERM in the calling thread.
            resource_tracker.ensure_running()
            return self._start()
        for attempt in range(1, START_ATTEMPTS + 1):
            started = _Started(self.num_workers)
            self.worker_init_fn = started
            it = self._start()
            stuck = started.wait(it, WORKER_START_S)
            if not stuck:
                return it
            pids = ", ".join(str(w.pid) for w in stuck)
            log.warning("DataLoader worker(s) %s did not start within %g s (a fork that deadlocked in the child: "
                        "CPython 3.11 and another thread's interpreter lock); starting the workers again (%d/%d)",
                        pids, WORKER_START_S, attempt, START_ATTEMPTS)
            _abandon(it, stuck)
        raise RuntimeError(f"DataLoader workers did not start in {START_ATTEMPTS} tries of {WORKER_START_S:g} s each")

    def _start(self) -> Any:
        before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            return super().__iter__()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


WORKER_START_S = 10.0  # a forked worker reports within milliseconds; one silent this long is stuck for good
START_ATTEMPTS = 3


class _Started:
    """Flags in shared memory that each forked worker sets first thing (its ``worker_init_fn``).

    A fork can deadlock in the child before any Python runs (CPython 3.11: PyOS_AfterFork_Child waits
    for the thread-state lock another thread of the rank held at the fork; 3.12 takes it around the
    fork). The rank would then wait for that worker's first batch forever. So the rank waits for
    every worker to report, and starts them again when one does not: no batch was taken yet, and
    every batch carries its own seed, so the restarted iterator yields the same batches."""

    def __init__(self, workers: int):
        self.flags = multiprocessing.get_context("fork").RawArray("b", workers)

    def __call__(self, worker_id: int) -> None:
        self.flags[worker_id] = 1

    def wait(self, it: Any, seconds: float) -> list[Any]:
        """The workers of ``it`` alive and not started after ``seconds`` (a dead one is torch's to report)."""
        deadline = time.monotonic() + seconds
        pause = 0.0005
        while True:
            waiting = [w for i, w in enumerate(it._workers) if not self.flags[i] and w.is_alive()]
            if not waiting or time.monotonic() > deadline:
                return waiting
            time.sleep(pause)
            pause = min(pause * 2, 0.02)


def _abandon(it: Any, stuck: list[Any]) -> None:
    """Shut down the iterator ``it`` whose workers ``stuck`` never started (SIGKILL: they inherited
    the blocked stop signals, and torch's SIGCHLD check is told first, so their end is no error)."""
    if getattr(it, "_worker_pids_set", False):
        from torch.utils.data._utils import signal_handling
        signal_handling._remove_worker_pids(id(it))
        it._worker_pids_set = False
    for w in stuck:
        with contextlib.suppress(ProcessLookupError):
            os.kill(w.pid, signal.SIGKILL)
        w.join(timeout=5.0)
    it._shutdown_workers()
    _join_feeders(it)


@contextlib.contextmanager
def batches(loader: DataLoader) -> Iterator[Iterator[Any]]:
    """``iter(loader)``, whose worker processes are shut down when the block ends, however it ends.
    Left to the garbage collector, the workers of an epoch that raised would wait for as long as its
    traceback lives, and they do not answer SIGTERM (see :class:`Loader`): a process that goes on
    after a failed run (a notebook, ``main([...])``) would wait for them at its exit."""
    it = iter(loader)
    try:
        yield it
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)  # torch's own, idempotent
        if shutdown is not None:
            shutdown()
            _join_feeders(it)


def _join_feeders(it: Any) -> None:
    """Wait for the threads that fed the (now closed) queues of the iterator ``it`` to end.

    torch closes them without joining their feeder threads, which then exit on their own. In
    CPython 3.11 a fork while a thread is exiting can deadlock the child: PyOS_AfterFork_Child waits
    for the interpreter's thread-state lock, which the exiting thread held at the fork, forever.
    The next loader's workers are forked right after this one ends (validation after training),
    so without this about one validation in ten hung a rank at its first batch (seen under mpirun
    with --workers 2: its worker stuck in os.fork, the rank waiting for it)."""
    for queue in [*getattr(it, "_index_queues", []), getattr(it, "_worker_result_queue", None)]:
        thread = getattr(queue, "_thread", None)  # multiprocessing.Queue's feeder, started by its first put
        if isinstance(thread, threading.Thread) and thread is not threading.current_thread():
            thread.join(timeout=5.0)


def worker_context(start_method: str, workers: int) -> multiprocessing.context.BaseContext | None:
    """How DataLoader workers start (None: no workers). Under ``forkserver`` the server imports torch
    and scorch once, so that each worker starts from a fork of it (a process without threads)."""
    if workers == 0:
        return None
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        context.set_forkserver_preload(["scorch.data"])
    return context


def train_loader(dataset: Any, workers: int, pin_memory: bool, where: str, start_method: str = "fork") -> DataLoader:
    """Loads the slots of an :class:`EpochPlan`; call :func:`set_plan` before each epoch."""
    return Loader(
        SeededItems(dataset, where),
        batch_sampler=PlanBatches(),
        num_workers=workers,
        collate_fn=ListCollate(where),
        pin_memory=pin_memory,
        persistent_workers=False,  # workers start afresh each epoch
        generator=torch.Generator(),
        multiprocessing_context=worker_context(start_method, workers),
    )


def set_plan(loader: DataLoader, plan: EpochPlan) -> None:
    batches = loader.batch_sampler
    assert isinstance(batches, PlanBatches) and loader.generator is not None
    batches.plan = plan
    loader.generator.manual_seed(plan.epoch_seed)


def eval_loader(dataset: Any, batch_size: int, rank: int, world_size: int, workers: int, pin_memory: bool, where: str,
                start_method: str = "fork") -> DataLoader:
    """This rank's share of a split, unpadded: every sample is evaluated on exactly one rank."""
    return Loader(
        SeededItems(dataset, where),
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset), rank, world_size),
        num_workers=workers,
        collate_fn=ListCollate(where),
        pin_memory=pin_memory,
        persistent_workers=False,
        generator=torch.Generator(),
        multiprocessing_context=worker_context(start_method, workers),
    )


def common_batches(length: int, batch_size: int, world_size: int) -> int:
    """How many evaluation batches every rank has (ranks with a smaller shard have fewer)."""
    return -(-(length // world_size) // batch_size)


def most_batches(length: int, batch_size: int, world_size: int) -> int:
    """How many evaluation batches the ranks with the largest shard have."""
    largest = -(-length // world_size)
    return -(-largest // batch_size)


def stand_in_batch(loader: DataLoader) -> Batch:
    """One sample of ``loader``'s split as a batch (sample 0), loaded here with every global RNG
    left as it was: the input of a forward pass that only keeps step with the other ranks."""
    import random

    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        dataset: Any = loader.dataset  # scorch's loaders: SeededItems, which loads a list of indices
        collate: Any = loader.collate_fn
        batch: Batch = collate(dataset.__getitems__([0]))
        return batch
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


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
