"""A forked DataLoader worker that never starts (in CPython 3.11 a fork can deadlock in the child,
seen under mpirun with --workers 2 about once in a few hundred forks) does not hang its rank: the
rank starts the workers again, and the epoch's batches are the same.

The stuck child here is a real forked process that stops in an at-fork hook of the child, before
the worker loop, where the deadlocked ones stop (the deadlock itself cannot be caused on demand)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from scorch import data
from tests.fixtures.blobs_dataset import DataSet, DataSetIndex

_STALL: list[Path] = []


def _stall_once_in_child() -> None:
    for marker in _STALL:
        try:
            os.rename(marker, marker.with_suffix(".taken"))  # the first child to get here stalls
        except OSError:
            continue
        time.sleep(3600)


os.register_at_fork(after_in_child=_stall_once_in_child)


def loader():
    return data.eval_loader(DataSet(DataSetIndex(), "train"), 8, 0, 1, 2, False, "d.py: DataSet.__getitem__")


def test_a_worker_stuck_after_its_fork_is_replaced_and_the_batches_are_the_same(tmp_path, monkeypatch, caplog):
    expected = [b[0][0] for b in loader()]
    marker = tmp_path / "stall"
    marker.write_text("")
    monkeypatch.setattr(data, "WORKER_START_S", 1.0)
    _STALL.append(marker)
    try:
        got = [b[0][0] for b in loader()]
    finally:
        _STALL.remove(marker)
    assert marker.with_suffix(".taken").exists(), "no child stalled"
    assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected))
    assert "did not start within 1 s" in caplog.text and "starting the workers again (1/3)" in caplog.text
