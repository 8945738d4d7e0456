"""Moving samples from ``unassigned`` into a group, atomically and without locks.

File locks are unreliable on cluster filesystems, so a move is built only
from ``rename(2)``, which is atomic and of which exactly one of two racing
renames of the same source succeeds.

A move of N samples into group G runs in a private *claim directory*:

1. ``mkdir claims/pending/<move>``.
2. **Claim**: rename unassigned chunks, oldest first, into it until they hold
   at least N samples. Claimed chunks are in no counted directory, so no
   other move (and no count) can see them. If a rename fails because another
   move took the chunk first, we lost a race: put back what we claimed and
   retry after a random back-off; when fewer than N are unassigned the move
   fails with the count that exists. Of two moves racing for more samples
   than exist one wins and the other gives everything back and fails.
3. **Prepare**: write the first N samples as ONE new chunk (so a group is a
   few large files and reads are fast) and, when the last claimed chunk was
   split, the rest as another chunk, both under ``out/`` in the claim
   directory; then ``plan.json``: which file goes where, which claimed
   chunks are dropped.
4. **Commit**: rename the claim directory to ``claims/committed/<move>``.
   This one rename decides: before it, nothing happened; after it, the
   move happens.
5. **Roll forward**: rename each prepared file into place, then delete the
   claimed sources, then the plan and the directory.

Every roll-forward step is a rename or unlink of a file that exists once,
and no file is ever created in a committed directory, so any process may
roll a committed move forward, any number of times, concurrently: the
outputs appear exactly once, and the sources go only after all outputs are
in place, so a sample is never in two places that count nor in none.

**Crashes.** A move killed before step 4 leaves a pending directory: its
samples are out of ``unassigned`` until recovery renames it to
``claims/aborted/`` (only once it is older than ``STALE_CLAIM_SECONDS``, the
owner touching it as it works) and puts the sources back. The owner's commit
(step 4) and a recovery's abort rename the same directory, so only one wins:
a slow owner that lost gets ``MoveAborted`` and nothing was moved. A move
killed after step 4 is finished by the next ``recover`` (every CLI command
calls it). While a move is in flight its samples are briefly in no count:
counts may dip, they never double.

Assumptions: rename of a file and of a directory within one filesystem are
atomic (POSIX local filesystems, NFSv3/v4, Lustre, GPFS); clocks of the
hosts agree to well within ``STALE_CLAIM_SECONDS``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._atomic import fsync_dir, write_json as atomic_write_json
from ._store import ARRAYS, UNASSIGNED, ParamSetDir, check_group_name, chunk_count, new_chunk_name, read_chunk, write_chunk_temp
from .errors import GenError, MoveAborted, NotEnoughSamples

log = logging.getLogger(__name__)

STALE_CLAIM_SECONDS = 900.0
PLAN = "plan.json"
_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class MoveResult:
    """What a move did."""

    moved: int
    group: str
    files: tuple[str, ...]


class _LostRace(Exception):
    """Another move renamed a chunk we were about to claim."""


def move(ps: ParamSetDir, n: int, group: str, *,
         stale_after: float = STALE_CLAIM_SECONDS) -> MoveResult:
    """Assign *n* unassigned samples of *ps* to *group*, irreversibly and atomically."""
    check_group_name(group)
    if n < 1:
        raise GenError(f"asked to move {n} samples; expected a positive number")
    deadline = time.monotonic() + _RETRY_SECONDS
    delay = 0.01
    while True:
        recover(ps, stale_after=stale_after)
        available = ps.count(UNASSIGNED)
        if n > available:
            raise NotEnoughSamples(f"asked to move {n} samples but only {available} are "
                                   "unassigned", available)
        ps.group_dir(group).mkdir(parents=True, exist_ok=True)  # only for a move that can happen
        try:
            return _move_once(ps, n, group)
        except _LostRace:
            if time.monotonic() > deadline:
                available = ps.count(UNASSIGNED)
                raise NotEnoughSamples(f"could not claim {n} samples in {_RETRY_SECONDS:.0f} s "
                                       f"of concurrent moves; {available} are unassigned now",
                                       available) from None
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 1.0)


def _move_once(ps: ParamSetDir, n: int, group: str) -> MoveResult:
    move_id = f"{time.time_ns():019d}-{uuid.uuid4().hex}"
    pending = ps.claims / "pending" / move_id
    pending.mkdir(parents=True)
    claimed: list[tuple[str, int]] = []
    try:
        got = 0
        for name, count in ps.chunks(UNASSIGNED):
            if got >= n:
                break
            try:
                os.rename(ps.unassigned / name, pending / name)
            except FileNotFoundError:
                if not pending.is_dir():
                    raise MoveAborted("the move was aborted by a recovery; nothing was "
                                      "moved, run it again") from None
                raise _LostRace() from None
            claimed.append((name, count))
            got += count
        if got < n:  # chunks vanished between the count and the claim
            raise _LostRace()
        plan = _prepare(ps, pending, claimed, n, group)
    except BaseException:
        _give_back(ps, pending, [name for name, _ in claimed])
        raise
    committed = ps.claims / "committed" / move_id
    try:
        os.rename(pending, committed)
    except FileNotFoundError:
        raise MoveAborted("the move was aborted by a recovery before it committed; nothing "
                          "was moved, run it again") from None
    fsync_dir(committed.parent)
    roll_forward(ps, committed)
    return MoveResult(n, group, tuple(Path(dest).name for _, dest in plan["publish"]))


def _prepare(ps: ParamSetDir, pending: Path, claimed: list[tuple[str, int]], n: int,
             group: str) -> dict:
    """Write the outputs and plan.json of a claim; returns the plan."""
    dest_dir = f"groups/{group}"
    if len(claimed) == 1 and claimed[0][1] == n:
        # One whole chunk: rename it into the group under a new (move-ordered) name.
        plan = {"group": group, "publish": [[claimed[0][0], f"{dest_dir}/{new_chunk_name(n)}"]],
                "drop": []}
    else:
        out = pending / "out"
        out.mkdir()
        parts: dict[str, list[np.ndarray]] = {key: [] for key in ARRAYS}
        for name, _ in claimed:
            arrays = read_chunk(pending / name, ARRAYS)
            for key in ARRAYS:
                parts[key].append(arrays[key])
            os.utime(pending)  # still alive: keep recovery from calling this claim stale
        joined = {key: np.concatenate(value) for key, value in parts.items()}
        total = len(joined["X"])
        publish = []
        for lo, hi, dest in ((0, n, dest_dir), (n, total, UNASSIGNED)):
            if hi == lo:
                continue
            tmp = write_chunk_temp(out, {key: a[lo:hi] for key, a in joined.items()})
            # The rest of a split chunk keeps its place in the unassigned queue.
            final = new_chunk_name(hi - lo, like=claimed[-1][0] if dest == UNASSIGNED else None)
            os.rename(tmp, out / final)
            publish.append([f"out/{final}", f"{dest}/{final}"])
            os.utime(pending)
        plan = {"group": group, "publish": publish, "drop": [name for name, _ in claimed]}
    atomic_write_json(pending / PLAN, plan)
    return plan


def _give_back(ps: ParamSetDir, claim: Path, names: list[str]) -> None:
    """Return claimed chunks to unassigned and remove the claim directory."""
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.rename(claim / name, ps.unassigned / name)
    shutil.rmtree(claim, ignore_errors=True)


def roll_forward(ps: ParamSetDir, committed: Path) -> None:
    """Finish a committed move; safe to run concurrently and repeatedly."""
    try:
        plan = json.loads((committed / PLAN).read_text())
    except FileNotFoundError:
        _remove_empty(committed)  # finished by someone else
        return
    for src, dest in plan["publish"]:
        target = ps.root / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.rename(committed / src, target)
    for parent in {(ps.root / dest).parent for _, dest in plan["publish"]}:
        fsync_dir(parent)
    # Every output is in place now (a failed rename means it already was).
    for name in plan["drop"]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(committed / name)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(committed / PLAN)
    _remove_empty(committed)
    log.debug("rolled forward move %s into %s", committed.name, plan["group"])


def _roll_back(ps: ParamSetDir, aborted: Path) -> None:
    """Return the sources of an aborted claim to unassigned, drop its outputs."""
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(aborted):
            if chunk_count(name) is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.rename(aborted / name, ps.unassigned / name)
    shutil.rmtree(aborted, ignore_errors=True)


def _remove_empty(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(directory / "out", ignore_errors=True)
        os.rmdir(directory)


def recover(ps: ParamSetDir, *, stale_after: float = STALE_CLAIM_SECONDS) -> None:
    """Finish committed moves, abort and undo pending ones older than *stale_after* s."""
    claims = ps.claims
    for committed in _subdirs(claims / "committed"):
        roll_forward(ps, committed)
    now = time.time()
    for pending in _subdirs(claims / "pending"):
        try:
            age = now - pending.stat().st_mtime
        except FileNotFoundError:
            continue
        if age >= stale_after:
            (claims / "aborted").mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.rename(pending, claims / "aborted" / pending.name)
                log.warning("aborted move %s: pending for %.0f s", pending.name, age)
    for aborted in _subdirs(claims / "aborted"):
        _roll_back(ps, aborted)


def _subdirs(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
