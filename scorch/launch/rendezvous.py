"""Meeting the other nodes (scorch's agents) or ranks (torch.distributed) in a TCPStore.

While members are missing, the waiting side logs who has joined at a calm interval; after the
join timeout every waiting member ends with one line naming those that never came and what to
check. A member that arrives with another shape of job (``--nnodes``, world size) or a taken
rank ends the meeting for everyone with one line (exit code 2).
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from torch.distributed import PrefixStore, Store, TCPStore

from ..errors import DistributedError, ScorchError
from . import network
from .base import LaunchInfo, Rendezvous

log = logging.getLogger(__name__)

POLL_S = 0.1


def log_interval(timeout: float) -> float:
    """Seconds between "waiting for ..." lines: a tenth of the timeout, within 1-30 s."""
    return min(30.0, max(1.0, timeout / 10))


def spans(numbers: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2, 5, 7-8"."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def plural(noun: str, numbers: list[int]) -> str:
    return f"{noun}{'s' if len(numbers) != 1 else ''} {spans(numbers)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(addr: str, port: int, host: bool, timeout: float, who: str, advice: str) -> TCPStore:
    """The store at ``addr:port``: started here when ``host``, else reached (waiting for ``who``
    hosts it, e.g. "node 0", with a line now and then, up to ``timeout`` seconds)."""
    store_timeout = datetime.timedelta(seconds=max(timeout, 60.0))
    if host:
        try:
            return TCPStore(addr, port, is_master=True, wait_for_workers=False, timeout=store_timeout)
        except RuntimeError as exc:
            raise DistributedError(
                f"cannot host the rendezvous on port {port} ({_first_line(exc)}); choose a free port "
                "(--master-port or MASTER_PORT)"
            ) from None
    start = time.monotonic()
    next_log = start + log_interval(timeout)
    while True:
        try:
            with socket.create_connection((addr, port), timeout=min(2.0, timeout)):
                break
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        now = time.monotonic()
        if now - start >= timeout:
            raise DistributedError(
                f"{who} never came: nothing answered at {addr}:{port} within {timeout:g} s ({reason}); {advice}"
            )
        if now >= next_log:
            log.info("waiting for %s at %s:%d (%s; %.0f s of %g s)", who, addr, port, reason, now - start, timeout)
            next_log += log_interval(timeout)
        time.sleep(min(1.0, max(0.05, start + timeout - now)))
    try:
        return TCPStore(addr, port, is_master=False, timeout=store_timeout)
    except RuntimeError as exc:
        raise DistributedError(f"cannot join the rendezvous at {addr}:{port} ({_first_line(exc)}); {advice}") from None


@dataclass
class Meeting:
    """Members ``0 .. size-1`` meeting under ``prefix`` in ``store``.

    ``where`` names the store for messages; ``advice`` says what to check when members never
    come; ``fix`` how to start members alike (for a shape that differs or a rank taken twice)."""

    store: Store
    prefix: str
    noun: str
    size: int
    where: str
    advice: str
    fix: str
    _error_key: str = field(init=False)

    def __post_init__(self) -> None:
        self._error_key = f"{self.prefix}/error"

    def _key(self, member: int) -> str:
        return f"{self.prefix}/{self.noun}/{member}"

    def fail(self, message: str, code: int) -> None:
        """End the meeting for every member with ``message`` (exit ``code``), and here too."""
        self.store.set(self._error_key, json.dumps({"message": message, "code": code}))
        _raise(message, code)

    def _check_error(self) -> None:
        if self.store.check([self._error_key]):
            error = json.loads(self.store.get(self._error_key))
            _raise(error["message"], error["code"])

    def member(self, member: int) -> dict[str, Any]:
        return json.loads(self.store.get(self._key(member)))

    def joined(self) -> list[int]:
        return [m for m in range(self.size) if self.store.check([self._key(m)])]

    def join(self, me: int, info: dict[str, Any], shape: str, timeout: float) -> None:
        """Register ``me`` (``info`` must hold ``host``) and wait until all ``size`` members have.
        ``shape`` (e.g. "--nnodes 2 --nproc-per-node 1") must be the same for every member."""
        start = time.monotonic()
        try:
            self._register(me, {**info, "shape": shape}, shape)
            joined = 0
            next_log = start + log_interval(timeout)
            while True:
                self._check_error()
                joined = self.store.add(f"{self.prefix}/count", 0)
                if joined >= self.size:
                    return
                now = time.monotonic()
                if now - start >= timeout:
                    missing = [m for m in range(self.size) if m not in self.joined()]
                    self.fail(
                        f"{plural(self.noun, missing)} never joined the rendezvous at {self.where} within "
                        f"{timeout:g} s ({joined} of {self.size} joined); {self.advice}", 1)
                if now >= next_log:
                    missing = [m for m in range(self.size) if m not in self.joined()]
                    log.info("waiting for %ss: %d of %d joined (missing: %s; %.0f s of %g s)", self.noun, joined,
                             self.size, plural(self.noun, missing), now - start, timeout)
                    next_log += log_interval(timeout)
                time.sleep(min(1.0, POLL_S + (now - start) / 20))  # brisk at first, calm in a long wait
        except (ScorchError, DistributedError):
            raise
        except RuntimeError as exc:  # the store went away: its host ended or the network failed
            raise DistributedError(
                f"lost the rendezvous at {self.where} while waiting for {self.noun}s ({_first_line(exc)}); "
                f"{self.noun} 0 ended or the network failed"
            ) from None

    def _register(self, me: int, info: dict[str, Any], shape: str) -> None:
        value = json.dumps(info, sort_keys=True)
        held = self.store.compare_set(self._key(me), "", value).decode()
        if held != value:
            other = json.loads(held).get("host", "?")
            self.fail(f"{self.noun} {me} was started twice (on {other} and on {info.get('host', '?')}); {self.fix}", 2)
        first = self.store.compare_set(f"{self.prefix}/shape", "", shape).decode()
        if first != shape:
            self.fail(f"{self.noun} {me} was started with {shape}, another {self.noun} with {first}; {self.fix}", 2)
        self.store.add(f"{self.prefix}/count", 1)


def _raise(message: str, code: int) -> None:
    if code == 2:
        raise ScorchError(message)
    raise DistributedError(message)


def join_ranks(where: Rendezvous, info: LaunchInfo, timeout: float, gloo: bool) -> Store:
    """Meet every rank of this job at ``where``; the store for its process group. Rank 0 hosts
    the store, unless the launcher's agent already does (torchrun, scorch's own launch). For
    gloo, GLOO_SOCKET_IFNAME is set (unless the user did) to the interface facing the others."""
    address = f"{where.addr}:{where.port}"
    advice = (f"check that every rank was started (see the launcher's log), that {address} is reachable from "
              "every node (MASTER_ADDR/MASTER_PORT, firewall) and docs/multinode.md")
    who = "node 0 (its launcher)" if where.agent_store else "rank 0"
    store = connect(where.addr, where.port, info.rank == 0 and not where.agent_store, timeout, who, advice)
    prefix = f"scorch/ranks/{where.attempt}"
    meeting = Meeting(store, prefix, "rank", info.world_size, address, advice,
                      fix="every rank must come from one launch (is another job using this address?)")
    mine = network.route_address(where.addr) or ""
    meeting.join(info.rank, {"host": socket.gethostname(), "addr": mine}, f"a world size of {info.world_size}", timeout)
    if gloo and "GLOO_SOCKET_IFNAME" not in os.environ:
        peers = (meeting.member(r)["addr"] for r in range(info.world_size) if r != info.rank)
        ifname = network.choose_interface(where.addr, peers)
        if ifname:
            log.debug("GLOO_SOCKET_IFNAME=%s (the interface facing the other ranks)", ifname)
            os.environ["GLOO_SOCKET_IFNAME"] = ifname
    return PrefixStore(f"{prefix}/pg", store)
