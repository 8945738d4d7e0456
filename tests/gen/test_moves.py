"""Moves: exact counts, irreversibility, races between movers, crashes mid-move."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from scorch.gen import GenError, NotEnoughSamples
from scorch.gen._moves import _prepare, move, recover, roll_forward
from scorch.gen._store import UNASSIGNED, ParamSetDir, read_chunk

from .conftest import BIN, assert_consistent, cli, group_uids, only_param_set


def _generate(gen_dir: Path, n: int, jobs: int = 2, params: str = "{}") -> ParamSetDir:
    assert cli("generate", "seq", "-n", str(n), "--jobs", str(jobs), "--local", "--time", "5",
               "--params", params, gen_dir=gen_dir) == 0
    return only_param_set(gen_dir)


def _claims_empty(ps: ParamSetDir) -> bool:
    return all(not any((ps.claims / state).iterdir()) for state in ("pending", "committed", "aborted"))


def test_move_exact_numbers_with_split_chunks(gen_dir: Path):
    ps = _generate(gen_dir, 100)  # 10 chunks of 10
    before = group_uids(ps, UNASSIGNED)
    result = move(ps, 37, "train")
    assert result.moved == 37
    assert ps.counts() == {UNASSIGNED: 63, "train": 37}
    assert len(ps.chunks("train")) == 1  # one consolidated file per move
    train, left = group_uids(ps, "train"), group_uids(ps, UNASSIGNED)
    assert len(train) == 37 and not train & left and train | left == before
    move(ps, 63, "test")
    assert ps.counts() == {UNASSIGNED: 0, "train": 37, "test": 63}
    assert assert_consistent(ps) == 100 and _claims_empty(ps)


def test_moves_are_irreversible_and_oldest_samples_go_first(gen_dir: Path):
    ps = _generate(gen_dir, 40, jobs=1)  # one writer: x values 0..39 in order
    move(ps, 15, "train")
    move(ps, 5, "train")
    x = np.concatenate([read_chunk(ps.group_dir("train") / name)["X"][:, 0]
                        for name, _ in ps.chunks("train")])
    assert x.tolist() == list(range(20))  # in move order, the oldest samples first
    with pytest.raises(GenError, match="not 'unassigned'"):
        move(ps, 1, "unassigned")


def test_asking_too_many_says_how_many_exist_and_changes_nothing(gen_dir: Path, capsys):
    ps = _generate(gen_dir, 30)
    listing = sorted(p.name for p in ps.all_chunk_paths())
    with pytest.raises(NotEnoughSamples, match="asked to move 31 samples but only 30 are unassigned"):
        move(ps, 31, "train")
    assert cli("move", "seq", "31", "train", gen_dir=gen_dir) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "only 30 are unassigned" in err and "Traceback" not in err
    assert sorted(p.name for p in ps.all_chunk_paths()) == listing and _claims_empty(ps)


def _race(gen_dir: Path, asks: list[int]) -> list[subprocess.CompletedProcess]:
    """Start one real ``scorch-gen move`` process per ask at once; wait for all."""
    procs = [subprocess.Popen([str(BIN / "scorch-gen"), "move", "seq", str(n), "train",
                               "--dir", str(gen_dir)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in asks]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate())
            for p in procs]


@pytest.mark.slow
def test_two_moves_racing_for_more_than_exist(gen_dir: Path):
    ps = _generate(gen_dir, 100)
    for _ in range(3):
        ps_total = ps.count(UNASSIGNED) + ps.count("train")
        available = ps.count(UNASSIGNED)
        ask = available // 2 + 5  # each fits alone, both do not
        results = _race(gen_dir, [ask, ask])
        codes = sorted(r.returncode for r in results)
        assert codes == [0, 2], [(r.returncode, r.stderr) for r in results]
        loser = next(r for r in results if r.returncode == 2)
        assert "unassigned" in loser.stderr and loser.stderr.count("\n") == 1
        assert ps.count(UNASSIGNED) == available - ask
        assert ps.count(UNASSIGNED) + ps.count("train") == ps_total
        assert assert_consistent(ps) == 100 and _claims_empty(ps)
        if ps.count(UNASSIGNED) < 12:
            break


@pytest.mark.slow
def test_many_concurrent_moves_that_fit_all_succeed(gen_dir: Path):
    ps = _generate(gen_dir, 200)
    results = _race(gen_dir, [20, 30, 40, 50])
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    assert ps.counts() == {UNASSIGNED: 60, "train": 140}
    assert len(ps.chunks("train")) == 4
    assert assert_consistent(ps) == 200 and _claims_empty(ps)


def _claim(ps: ParamSetDir, move_id: str, n: int) -> Path:
    """Steps 1-3 of a move by hand (claim chunks, prepare): a move that stopped before commit."""
    pending = ps.claims / "pending" / move_id
    pending.mkdir(parents=True)
    claimed, got = [], 0
    for name, count in ps.chunks(UNASSIGNED):
        if got >= n:
            break
        os.rename(ps.unassigned / name, pending / name)
        claimed.append((name, count))
        got += count
    _prepare(ps, pending, claimed, n, "train")
    return pending


def test_move_killed_before_commit_is_undone_by_recovery(gen_dir: Path):
    ps = _generate(gen_dir, 50, jobs=1)  # 5 chunks of 10
    uids = group_uids(ps, UNASSIGNED)
    pending = _claim(ps, "0000000000000000001-" + "a" * 32, 25)
    assert ps.count(UNASSIGNED) == 20  # 3 chunks claimed; counts dip, never double
    recover(ps)  # young: left alone (its owner may still be working)
    assert pending.is_dir()
    recover(ps, stale_after=0)
    assert ps.counts() == {UNASSIGNED: 50} and group_uids(ps, UNASSIGNED) == uids
    assert _claims_empty(ps)


def test_committed_move_finished_by_concurrent_recoveries(gen_dir: Path):
    ps = _generate(gen_dir, 50)
    uids = group_uids(ps, UNASSIGNED)
    pending = _claim(ps, "0000000000000000002-" + "b" * 32, 25)
    committed = ps.claims / "committed" / pending.name
    os.rename(pending, committed)  # the commit; the owner "dies" here
    threads = [threading.Thread(target=recover, args=(ps,)) for _ in range(4)]
    threads += [threading.Thread(target=roll_forward, args=(ps, committed)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ps.count("train") == 25 and ps.count(UNASSIGNED) == 25
    assert group_uids(ps, "train") | group_uids(ps, UNASSIGNED) == uids
    assert assert_consistent(ps) == 50 and _claims_empty(ps)


def test_an_aborted_claim_can_no_longer_be_committed(gen_dir: Path):
    ps = _generate(gen_dir, 30)
    pending = _claim(ps, "0000000000000000003-" + "c" * 32, 15)
    recover(ps, stale_after=0)  # aborts it: the owner's commit (this rename) now fails
    with pytest.raises(FileNotFoundError):
        os.rename(pending, ps.claims / "committed" / pending.name)
    assert ps.counts() == {UNASSIGNED: 30} and _claims_empty(ps)


@pytest.mark.slow
def test_move_process_killed_at_random_moments(gen_dir: Path):
    # Wide rows make a move take a while (reading and rewriting ~50 MB).
    ps = _generate(gen_dir, 600, jobs=2, params="{'width': 20000}")
    uids = group_uids(ps, UNASSIGNED)
    rng = random.Random(7)
    for _ in range(4):
        available = ps.count(UNASSIGNED)
        proc = subprocess.Popen([str(BIN / "scorch-gen"), "move", "seq", str(available // 2 + 3),
                                 "train", "--params", "{'width': 20000}", "--dir", str(gen_dir)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        recover(ps, stale_after=0)
        assert _claims_empty(ps)
        train, left = group_uids(ps, "train"), group_uids(ps, UNASSIGNED)
        assert not train & left and train | left == uids
        assert assert_consistent(ps) == 600
