"""scorch's own launch, the launcher side: ``--nproc-per-node`` ranks on each of ``--nnodes``
machines, restarted up to ``--max-restarts`` times.

Every node runs one agent (the scorch-train process the user started there). The agents meet in
a TCPStore that node 0's agent hosts at ``--master-addr:--master-port``; each then starts its
ranks with torchrun's variables (so they see a :class:`~.torchrun.TorchrunEnvironment` and meet,
as torch.distributed ranks, in the same store under the attempt's keys) and watches them and the
store. The first failure anywhere is posted in the store; every agent then stops its ranks, and
either all restart together, resuming from the last checkpoint (``--auto-resume``), or all end
with that failure. Signals (SIGINT, SIGTERM, SIGUSR1) are forwarded to the ranks, which
checkpoint and stop (exit code 3): a stop is not a failure and is not restarted.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

from .. import _signals
from .._parent_death import parent_death_signal
from ..config import TrainConfig
from ..errors import EXIT_PREEMPTED, STOP_SIGNALS, DistributedError, RankFailed, ScorchError
from ..rundir.directory import default_name
from . import network, rendezvous
from .base import LaunchEnvironment, free_port
from .rendezvous import Meeting, plural

log = logging.getLogger(__name__)

# Flags of the agent that its ranks must not see again (each takes one value).
LAUNCH_FLAGS = ("--nproc-per-node", "--nnodes", "--node-rank", "--master-addr", "--master-port", "--max-restarts")
LAUNCH_KEYS = {flag[2:].replace("-", "_") for flag in LAUNCH_FLAGS}
STOP_GRACE_S = 5.0  # a rank's peers usually fail on their own once it is gone; then SIGKILL
POLL_S = 0.1  # the store
LOCAL_POLL_S = 0.01  # this node's ranks: often enough to tell the rank that failed from the peers it took along


def wanted(config: TrainConfig) -> bool:
    """Whether scorch starts the ranks itself (no launcher did): several ranks, several nodes,
    or restarts asked for."""
    return config.nproc_per_node > 1 or config.nnodes > 1 or config.max_restarts > 0


def check_no_launcher(environment: LaunchEnvironment, config: TrainConfig, given: Mapping[str, Any]) -> None:
    """Launch flags given (``given``: the flags of the command line) to a process a launcher
    started: the launcher set the world size already. One line, exit code 2."""
    if environment.name == "none":
        return
    flags = [flag for flag in LAUNCH_FLAGS if flag[2:].replace("-", "_") in given]
    if not flags:
        return
    asked = config.nnodes * config.nproc_per_node
    disagree = (f", and {config.nnodes} x {config.nproc_per_node} = {asked} disagrees with it"
                if asked != environment.world_size and {"--nnodes", "--nproc-per-node"} & set(flags) else "")
    raise ScorchError(
        f"{', '.join(flags)}: this process was started by {environment.name}, which set the world size "
        f"({environment.world_size} rank{'s' if environment.world_size != 1 else ''}){disagree}; drop "
        f"{' and '.join(flags)} (use the launcher's own options), or start scorch-train without a launcher"
    )


def child_argv(argv: list[str], name: str, restart: bool = False) -> list[str]:
    """The ranks' command line: the agent's without its launch flags (and ``--set`` of them),
    with the run's name; a restart resumes (``--auto-resume``) instead of starting over."""
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        flag, has_value, value = arg.partition("=")
        flag = flag.replace("_", "-")
        if flag in LAUNCH_FLAGS or (restart and flag == "--overwrite"):
            if flag != "--overwrite" and not has_value:
                next(args, None)
            continue
        if flag == "--set":
            item = value if has_value else next(args, "")
            if item.partition("=")[0].strip() not in LAUNCH_KEYS:
                out += ["--set", item]
            continue
        out.append(arg)
    if "--name" not in [a.split("=", 1)[0] for a in out]:
        out += ["--name", name]
    if restart and not {"--resume", "--auto-resume"} & {a.split("=", 1)[0] for a in out}:
        out.append("--auto-resume")
    return out


@dataclass(frozen=True)
class Failure:
    """Ranks of one node that ended badly, as posted for every agent: [(rank, exit code), ...]."""

    node: int
    ranks: tuple[tuple[int, int], ...]

    @property
    def code(self) -> int:
        return next((c for _, c in self.ranks if c > 0), 1)

    def describe(self) -> str:
        return ", ".join(f"rank {r} (exit code {c})" for r, c in self.ranks)

    def to_json(self) -> str:
        return json.dumps({"node": self.node, "ranks": [list(rc) for rc in self.ranks]})

    @classmethod
    def from_json(cls, text: bytes | str) -> Failure:
        data = json.loads(text)
        return cls(int(data["node"]), tuple((int(r), int(c)) for r, c in data["ranks"]))


class Agent:
    """One node's agent; :meth:`run` returns the job's exit code or raises its one-line error."""

    def __init__(self, config: TrainConfig, argv: list[str]):
        self.config, self.argv = config, argv
        self.nnodes, self.node, self.nproc = config.nnodes, config.node_rank, config.nproc_per_node
        self.addr = config.master_addr
        self.port = config.master_port or (free_port() if config.nnodes == 1 else 29500)
        self.where = f"{self.addr}:{self.port}"
        self.world = self.nnodes * self.nproc
        self.first_rank = self.node * self.nproc
        self.host = socket.gethostname()

        self.default_name = default_name()  # node 0's is the run's, unless a node was given --name
        self.first_meeting: Meeting | None = None
        self.advice = (
            f"check that every node runs scorch-train with --nnodes {self.nnodes} --master-addr {self.addr} "
            f"--master-port {self.port} and its own --node-rank, that {self.addr} is node 0's address as the "
            f"other nodes see it, and that port {self.port} is open in node 0's firewall (docs/multinode.md)"
        )
        self.store: Any = None

    def run(self) -> int:
        if self.nnodes > 1:
            log.info("node %d of %d: meeting the other nodes at %s (--join-timeout %g s)", self.node, self.nnodes,
                     self.where, self.config.join_timeout)
        self.store = rendezvous.connect(self.addr, self.port, self.node == 0, self.config.join_timeout,
                                        "node 0", self.advice)
        try:
            for attempt in range(self.config.max_restarts + 1):
                meeting = self._meet(attempt)
                name = self._agreed_name(meeting)
                if attempt == 0:
                    log.info("starting %d rank%s on %d node%s: %s here (node %d), rendezvous %s", self.world,
                             "s" if self.world != 1 else "", self.nnodes, "s" if self.nnodes != 1 else "",
                             plural("rank", list(range(self.first_rank, self.first_rank + self.nproc))),
                             self.node, self.where)
                failure, local = self._attempt(attempt, meeting, name)
                if failure is None:
                    return EXIT_PREEMPTED if EXIT_PREEMPTED in local else 0
                place = f" on node {failure.node}" if self.nnodes > 1 else ""
                if attempt < self.config.max_restarts:
                    log.warning("%s failed%s; restart %d of %d: every rank starts again from the last checkpoint",
                                failure.describe(), place, attempt + 1, self.config.max_restarts)
                    continue
                others = Failure(self.node, tuple(rc for rc in _failed(local, self.first_rank) if rc not in failure.ranks))
                then = f", then {others.describe()}" if others.ranks else ""
                restarts = f" (after {attempt} restart{'s' if attempt != 1 else ''})" if attempt else ""
                raise RankFailed(f"{failure.describe()} failed{place}{then}{restarts}; the job's error is above",
                                 failure.code)
            raise AssertionError("unreachable")
        finally:
            self._leave()

    # --- one attempt ------------------------------------------------------
    def _meet(self, attempt: int) -> Meeting:
        meeting = Meeting(self.store, f"scorch/nodes/{attempt}", "node", self.nnodes, self.where, self.advice,
                          fix="start every node with the same --nnodes and --nproc-per-node and its own --node-rank")
        info = {"host": self.host, "addr": network.route_address(self.addr) or "", "name": self.config.name,
                "default_name": self.default_name}
        self.first_meeting = self.first_meeting or meeting
        meeting.join(self.node, info, f"--nnodes {self.nnodes} --nproc-per-node {self.nproc}", self.config.join_timeout)
        if self.nnodes > 1 and attempt == 0:
            log.info("all %d nodes joined: %s", self.nnodes,
                     ", ".join(f"node {n} {meeting.member(n)['host']}" for n in range(self.nnodes)))
        return meeting

    def _agreed_name(self, meeting: Meeting) -> str:
        """The run's name: the --name given (to any node), else node 0's default. Every node
        checks the same list, so names given differently end every node alike."""
        given = {n: meeting.member(n)["name"] for n in range(self.nnodes)}
        named = {n: name for n, name in given.items() if name is not None}
        if len(set(named.values())) > 1:
            listed = ", ".join(f"--name {name} on node {n}" for n, name in named.items())
            raise ScorchError(f"the nodes were given different names ({listed}); give every node the same --name, "
                              "or give it to one of them")
        return str(next(iter(named.values()), None) or meeting.member(0)["default_name"])

    def _attempt(self, attempt: int, meeting: Meeting, name: str) -> tuple[Failure | None, list[int | None]]:
        """Start this node's ranks, watch them and the others'; (the first failure anywhere,
        this node's exit codes, None for ranks that were stopped)."""
        prefix = f"scorch/nodes/{attempt}"
        procs = self._start(attempt, meeting, name)
        stopped: set[int] = set()
        try:
            with _Forwarding(procs):
                failure = self._watch(procs, f"{prefix}/failed")
                if failure is not None:
                    stopped = _stop(procs)
        except BaseException:
            _stop(procs, grace=0.0)  # e.g. node 0 lost: leave no rank behind
            raise
        codes = [None if i in stopped else p.wait() for i, p in enumerate(procs)]
        for p in procs:
            p.wait()
        self.store.set(f"{prefix}/end/{self.node}", json.dumps(codes))
        failure = self._wait_for_nodes(prefix) or failure
        return failure, codes

    def _start(self, attempt: int, meeting: Meeting, name: str) -> list[subprocess.Popen[bytes]]:
        env = dict(os.environ)
        env.update(
            WORLD_SIZE=str(self.world), LOCAL_WORLD_SIZE=str(self.nproc), GROUP_RANK=str(self.node),
            GROUP_WORLD_SIZE=str(self.nnodes), ROLE_WORLD_SIZE=str(self.world), ROLE_NAME="default",
            MASTER_ADDR=self.addr, MASTER_PORT=str(self.port), TORCHELASTIC_RUN_ID=f"scorch-{name}",
            TORCHELASTIC_RESTART_COUNT=str(attempt), TORCHELASTIC_MAX_RESTARTS=str(self.config.max_restarts),
            TORCHELASTIC_USE_AGENT_STORE="True",
        )
        if "GLOO_SOCKET_IFNAME" not in env and self.nnodes > 1:
            peers = (meeting.member(n)["addr"] for n in range(self.nnodes) if n != self.node)
            ifname = network.choose_interface(self.addr, peers)
            if ifname:
                env["GLOO_SOCKET_IFNAME"] = ifname
                if attempt == 0:
                    log.info("ranks talk to the other nodes over %s (set GLOO_SOCKET_IFNAME to choose)", ifname)
        argv = [sys.executable, "-m", "scorch.cli.train", *child_argv(self.argv, name, restart=attempt > 0)]
        procs = []
        for local in range(self.nproc):
            rank = self.first_rank + local
            env.update(RANK=str(rank), ROLE_RANK=str(rank), LOCAL_RANK=str(local))
            procs.append(subprocess.Popen(argv, env=dict(env), start_new_session=True, preexec_fn=_die_with_parent))
        return procs

    def _watch(self, procs: list[subprocess.Popen[bytes]], key: str) -> Failure | None:
        """Until this node's ranks have all ended well (None), or a rank anywhere failed."""
        next_check = 0.0
        while True:
            codes = [p.poll() for p in procs]
            failed = _failed(codes, self.first_rank)
            if failed:
                mine = Failure(self.node, tuple(failed))
                return Failure.from_json(self.store.compare_set(key, "", mine.to_json()))
            if time.monotonic() >= next_check:
                if self._check(key):
                    return Failure.from_json(self.store.get(key))
                next_check = time.monotonic() + POLL_S
            if all(c is not None for c in codes):
                return None
            time.sleep(LOCAL_POLL_S)

    def _check(self, key: str) -> bool:
        try:
            return bool(self.store.check([key]))
        except RuntimeError:
            raise DistributedError(f"lost node 0 (the rendezvous at {self.where}) while the ranks ran: its "
                                   "agent ended or the network failed") from None

    def _wait_for_nodes(self, prefix: str) -> Failure | None:
        """Wait until every node's ranks have ended this attempt; a failure posted meanwhile."""
        deadline = time.monotonic() + STOP_GRACE_S + 60
        while True:
            ended = [n for n in range(self.nnodes) if self._check(f"{prefix}/end/{n}")]
            if len(ended) == self.nnodes:
                break
            if time.monotonic() > deadline:
                missing = [n for n in range(self.nnodes) if n not in ended]
                raise DistributedError(f"{plural('node', missing)} did not report the end of their ranks within "
                                       f"{STOP_GRACE_S + 60:g} s; {self.advice}")
            time.sleep(POLL_S)
        return Failure.from_json(self.store.get(f"{prefix}/failed")) if self._check(f"{prefix}/failed") else None

    def _leave(self) -> None:
        """Say this node is done with the store; node 0 keeps it up until every node said so."""
        if self.store is None:
            return
        try:
            self.store.set(f"scorch/left/{self.node}", "1")
            came = self.first_meeting.joined() if self.first_meeting is not None and self.node == 0 else []
            deadline = time.monotonic() + 10
            while came and time.monotonic() < deadline:
                if all(self.store.check([f"scorch/left/{n}"]) for n in came):
                    break
                time.sleep(POLL_S)
        except RuntimeError:
            pass


def launch(config: TrainConfig, argv: list[str]) -> int:
    """Run this node's share of the job; the exit code (0, or 3 after a stop signal), or raises
    :class:`RankFailed` / :class:`DistributedError` / :class:`ScorchError` with one line."""
    return Agent(config, argv).run()


def _failed(codes: list[int | None], first_rank: int) -> list[tuple[int, int]]:
    return [(first_rank + i, c) for i, c in enumerate(codes) if c is not None and c not in (0, EXIT_PREEMPTED)]


def _stop(procs: list[subprocess.Popen[bytes]], grace: float = STOP_GRACE_S) -> set[int]:
    """Give the ranks ``grace`` seconds to end on their own (their peers are gone), then SIGKILL
    them with their process groups (DataLoader workers included); the indices of those killed."""
    deadline = time.monotonic() + grace
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    killed = set()
    for i, p in enumerate(procs):
        if p.poll() is None:
            log.debug("stopping rank process %d", p.pid)
            killed.add(i)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return killed


class _Forwarding:
    """While the ranks run, a stop signal to the agent goes to every rank (each in its own
    session, so a terminal's Ctrl-C reaches them once, through here)."""

    def __init__(self, procs: list[subprocess.Popen[bytes]]):
        self.procs = procs
        self.previous: dict[int, Any] = {}

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        log.info("got %s: passing it to the ranks (they checkpoint and stop)", signal.Signals(signum).name)
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signum)
                except ProcessLookupError:
                    pass

    def __enter__(self) -> _Forwarding:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self.previous[sig] = signal.signal(sig, self._forward)
        early = _signals.take()
        if early is not None:  # it came while the agent started: the ranks get it now
            self._forward(signal.Signals[early], None)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# A killed agent leaves no rank behind: each rank gets SIGKILL when its agent dies while it starts (resolved
# before any fork); from its set-up on, SIGTERM: it stops at the next step with a checkpoint (TorchrunEnvironment).
_die_with_parent = parent_death_signal(signal.SIGKILL)
