"""A real, private, single-host SLURM cluster for tests.

``start_slurm(workdir)`` starts ``munged``, ``slurmctld`` and ``slurmd`` with a
``slurm.conf`` written under *workdir* (nothing in ``/etc`` is read or
written) and yields a :class:`SlurmCluster`. Client commands find that
configuration through ``SLURM_CONF``, which is in :attr:`SlurmCluster.env`;
pass that env to every subprocess that calls ``sbatch``/``squeue``/... (jobs
inherit it, so ``scontrol requeue`` from inside a job works too).

The settings are the ones that work in a container without systemd or
cgroups: ``proctrack/linuxproc``, ``task/none``, no accounting database
(job state comes from ``scontrol show job``; finished jobs stay visible for
``MinJobAge`` = 300 s), ``OverSubscribe=FORCE`` so a 2-core machine runs
several 1-CPU jobs at once, ``JobRequeue=1`` and a short ``KillWait``.
Each cluster picks free ports and its own munge socket, so two test sessions
on one machine do not meet.

The pytest fixture ``slurm`` (session scope; enable it with
``pytest_plugins = ["tests.slurm_fixture"]``) starts one cluster for the whole
session and stops it at the end. It skips the test only when the SLURM/munge
binaries are missing (``bash scripts/setup_slurm.sh`` installs them; ``make
setup-test`` runs that); with ``CI`` or ``SCORCH_REQUIRE_SLURM`` set in the
environment a missing SLURM is a failure instead, so CI cannot skip silently.

``stop()`` cancels every job, kills the daemons' process groups and then any
process still carrying this cluster's ``SLURM_CONF`` in its environment (job
steps that outlived ``slurmd``), so no daemon or job is left running.
"""
from __future__ import annotations

import contextlib
import logging
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
REQUIRED_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "scancel")
TERMINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
    "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED",
})


class SlurmUnavailable(RuntimeError):
    """The SLURM or munge binaries are not installed on this machine."""


class SlurmStartError(RuntimeError):
    """The daemons were installed but the cluster did not come up."""


def find_binary(name: str) -> str | None:
    """Path of *name* on PATH or in the sbin directories Debian uses."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    return shutil.which(name, path=path)


def missing_binaries() -> list[str]:
    """Names from REQUIRED_BINARIES that are not installed."""
    return [name for name in REQUIRED_BINARIES if find_binary(name) is None]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """The NodeName line ``slurmd -C`` detects for this host (no drain on mismatch)."""
    out = subprocess.run([find_binary("slurmd") or "slurmd", "-C"], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    line = next(entry for entry in out.splitlines() if entry.startswith("NodeName="))
    return line


def slurm_conf(*, workdir: Path, munge_socket: Path, host: str, node_line: str,
               ctld_port: int, slurmd_port: int, cluster: str,
               extra: Mapping[str, str] | None = None) -> str:
    """Text of a slurm.conf for one host; all state, spool, pid and log files under *workdir*.

    *extra* adds or overrides settings (``{"KillWait": "5"}``).
    """
    settings = {
        "ClusterName": cluster,
        "SlurmctldHost": f"{host}(127.0.0.1)",
        "SlurmctldPort": str(ctld_port),
        "SlurmdPort": str(slurmd_port),
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        # cred_expire: also how long a requeued job waits before it may start again.
        "AuthInfo": f"socket={munge_socket},cred_expire=10",
        "StateSaveLocation": str(workdir / "state"),
        "SlurmdSpoolDir": str(workdir / "spool"),
        "SlurmctldPidFile": str(workdir / "slurmctld.pid"),
        "SlurmdPidFile": str(workdir / "slurmd.pid"),
        "SlurmctldLogFile": str(workdir / "slurmctld.log"),
        "SlurmdLogFile": str(workdir / "slurmd.log"),
        "SlurmctldDebug": "info",
        "SlurmdDebug": "info",
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_CPU",
        "JobAcctGatherType": "jobacct_gather/none",
        "AccountingStorageType": "accounting_storage/none",
        "JobCompType": "jobcomp/none",
        "MpiDefault": "none",
        "SwitchType": "switch/none",
        "LaunchParameters": "use_interactive_step",
        "ReturnToService": "2",
        "MinJobAge": "300",
        "KillWait": "2",
        "InactiveLimit": "0",
        "SlurmdTimeout": "300",
        "MessageTimeout": "30",
        "JobRequeue": "1",
        "MaxArraySize": "100001",
        "MaxJobCount": "200000",
        "SchedulerType": "sched/backfill",
        "SchedulerParameters": "defer_batch=0,sched_interval=2,bf_interval=2",
        "PlugStackConfig": str(workdir / "plugstack.conf"),
        "MailProg": "/bin/true",
    }
    settings.update(extra or {})
    lines = [f"{key}={value}" for key, value in settings.items()]
    node = re.sub(r"^NodeName=\S+", f"NodeName={host} NodeAddr=127.0.0.1", node_line)
    node = re.sub(r"\s*UpTime=\S+", "", node)
    lines.append(node + " State=UNKNOWN")
    lines.append(f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE "
                 "State=UP OverSubscribe=FORCE:8")
    return "\n".join(lines) + "\n"


@dataclass
class SlurmCluster:
    """A running private cluster; build it with :func:`start_slurm`."""

    workdir: Path
    conf: Path
    env: dict[str, str]
    host: str
    partition: str = "debug"
    _procs: list[subprocess.Popen] = field(default_factory=list, repr=False)
    _munge_dir: Path | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def run(self, args: Sequence[str], *, check: bool = True, timeout: float = 60,
            **kwargs) -> subprocess.CompletedProcess:
        """Run a SLURM client command (``["sbatch", ...]``) against this cluster."""
        argv = list(args)
        argv[0] = find_binary(argv[0]) or argv[0]
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                              timeout=timeout, **kwargs)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: "
                               f"{proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def submit(self, args: Sequence[str], **kwargs) -> str:
        """``sbatch --parsable ARGS``; returns the job id (the array's id for arrays)."""
        out = self.run(["sbatch", "--parsable", *args], **kwargs).stdout.strip()
        return out.split(";")[0]

    def job_states(self, job_id: str) -> dict[str, str]:
        """State of each job (or array task) under *job_id*, keyed by its JobId."""
        proc = self.run(["scontrol", "-o", "show", "job", str(job_id)], check=False)
        if proc.returncode != 0:
            raise LookupError(f"scontrol does not know job {job_id}: {proc.stderr.strip()}")
        states: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            if "JobState" not in fields:
                continue
            key = fields.get("JobId", "?")
            if fields.get("ArrayTaskId"):
                key = f"{fields.get('ArrayJobId', key)}_{fields['ArrayTaskId']}"
            states[key] = fields["JobState"]
        return states

    def wait_job(self, job_id: str, timeout: float = 120, poll: float = 0.5) -> str:
        """Poll ``scontrol show job`` until every task of *job_id* has ended.

        Returns the final state ("COMPLETED", ...); when an array's tasks end
        differently, the distinct states joined by commas, sorted.
        Raises TimeoutError (with the log tails) if that takes over *timeout* s.
        """
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while True:
            states = self.job_states(job_id)
            if states and all(s in TERMINAL_STATES for s in states.values()):
                return ",".join(sorted(set(states.values())))
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} not finished after {timeout} s: {states}\n"
                                   f"{self.log_tail()}")
            time.sleep(poll)

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of the daemon logs, for failure messages."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.workdir / name
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(parts)

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until the node accepts jobs (idle/mixed/allocated)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise SlurmStartError(f"{proc.args[0]} exited {proc.returncode}\n{self.log_tail()}")
            res = self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False, timeout=20)
            last = (res.stdout + res.stderr).strip()
            state = last.split()[0].rstrip("*~#") if res.returncode == 0 and last else ""
            if state in ("idle", "mixed", "allocated"):
                return
            if state in ("down", "drained", "draining"):
                self.run(["scontrol", "update", f"NodeName={self.host}", "State=RESUME"],
                         check=False)
            time.sleep(0.5)
        raise SlurmStartError(f"node not ready after {timeout} s (sinfo: {last!r})\n{self.log_tail()}")

    def stop(self) -> None:
        """Cancel all jobs, stop the daemons, kill leftover job processes. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            self.run(["scancel", "--full", "--user", "root"], check=False, timeout=20)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                res = self.run(["squeue", "-h", "-o", "%i"], check=False, timeout=20)
                if res.returncode != 0 or not res.stdout.strip():
                    break
                time.sleep(0.5)
        for proc in reversed(self._procs):
            _kill_group(proc)
        _kill_processes_with_env("SLURM_CONF", str(self.conf))
        if self._munge_dir is not None:
            shutil.rmtree(self._munge_dir, ignore_errors=True)


def _kill_group(proc: subprocess.Popen, grace: float = 5) -> None:
    """SIGTERM the process group of *proc* (started with a new session), then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def _kill_processes_with_env(name: str, value: str) -> list[int]:
    """SIGKILL every process whose environment has NAME=VALUE (job steps of one cluster)."""
    needle = f"{name}={value}".encode()
    killed = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    if killed:
        log.info("killed leftover job processes %s", killed)
    return killed


def _start_munge(cluster: SlurmCluster) -> Path:
    """Start a private munged (as user munge when it exists) with its own key and socket."""
    mdir = Path(tempfile.mkdtemp(prefix="scorch-munge-"))  # /tmp: traversable by user munge
    cluster._munge_dir = mdir
    key = mdir / "munge.key"
    subprocess.run([find_binary("mungekey") or "mungekey", "-c", "-f", "-k", str(key)],
                   check=True, capture_output=True, timeout=30)
    key.chmod(0o400)
    user = None
    try:
        pw = pwd.getpwnam("munge")
        user = "munge"
        for path in (mdir, key):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    except KeyError:
        pass
    mdir.chmod(0o755)
    sock = mdir / "munge.socket"
    argv = [find_binary("munged") or "munged", "-F", f"--socket={sock}", f"--key-file={key}",
            f"--log-file={mdir / 'munged.log'}", f"--pid-file={mdir / 'munged.pid'}",
            f"--seed-file={mdir / 'munged.seed'}"]
    if user is None and os.geteuid() == 0:
        argv.append("--force")
    with open(mdir / "munged.stderr", "w") as err:  # the daemon keeps its own copy of the descriptor
        proc = subprocess.Popen(argv, user=user, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err)
    cluster._procs.append(proc)
    deadline = time.monotonic() + 20
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            err = (mdir / "munged.stderr").read_text(errors="replace")
            raise SlurmStartError(f"munged did not start: {err.strip()}")
        time.sleep(0.1)
    return sock


@contextlib.contextmanager
def start_slurm(workdir: str | os.PathLike,
                extra_conf: Mapping[str, str] | None = None) -> Iterator[SlurmCluster]:
    """Start a private one-node cluster under *workdir*; stop it on exit.

    *extra_conf* adds or overrides slurm.conf settings.
    """
    missing = missing_binaries()
    if missing:
        raise SlurmUnavailable(f"not installed: {', '.join(missing)} "
                               "(run: bash scripts/setup_slurm.sh)")
    workdir = Path(workdir).resolve()
    for sub in ("state", "spool"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    (workdir / "plugstack.conf").write_text("")
    host = socket.gethostname().split(".")[0]
    conf = workdir / "slurm.conf"
    env = dict(os.environ)
    env["SLURM_CONF"] = str(conf)
    env["PATH"] = os.pathsep.join([env.get("PATH", ""), *_SBIN])
    cluster = SlurmCluster(workdir=workdir, conf=conf, env=env, host=host)
    try:
        sock = _start_munge(cluster)
        conf.write_text(slurm_conf(workdir=workdir, munge_socket=sock, host=host,
                                   node_line=_node_line(), ctld_port=_free_port(),
                                   slurmd_port=_free_port(),
                                   cluster=f"scorch{os.getpid()}", extra=extra_conf))
        for daemon, extra in (("slurmctld", ["-c", "-i"]), ("slurmd", [])):
            _daemon(cluster, [find_binary(daemon) or daemon, "-D", "-f", str(conf), *extra], env,
                    workdir / f"{daemon}.stderr")
            if daemon == "slurmctld":
                _wait_ctld(cluster)
        cluster.wait_ready()
        log.info("slurm cluster up: %s", conf)
        yield cluster
    finally:
        cluster.stop()


def _wait_ctld(cluster: SlurmCluster, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster._procs[-1].poll() is not None:
            raise SlurmStartError(f"slurmctld exited\n{cluster.log_tail()}\n"
                                  f"{(cluster.workdir / 'slurmctld.stderr').read_text()}")
        if cluster.run(["scontrol", "ping"], check=False, timeout=20).returncode == 0:
            return
        time.sleep(0.3)
    raise SlurmStartError(f"slurmctld did not answer ping in {timeout} s\n{cluster.log_tail()}")


# --- pytest glue ------------------------------------------------------------
try:
    import pytest
except ImportError:  # the module is usable without pytest
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="session")
    def slurm(tmp_path_factory) -> Iterator[SlurmCluster]:
        """One private SLURM cluster for the test session."""
        missing = missing_binaries()
        if missing:
            reason = (f"SLURM is not installed ({', '.join(missing)} missing); "
                      "run: bash scripts/setup_slurm.sh")
            if os.environ.get("CI") or os.environ.get("SCORCH_REQUIRE_SLURM"):
                pytest.fail(reason)
            pytest.skip(reason)
        with start_slurm(tmp_path_factory.mktemp("slurm")) as cluster:
            yield cluster


# --- two nodes on this host (lane "launch"; additive) --------------------------------------
def two_node_names() -> tuple[str, str]:
    """Names for two nodes on this host: this host's name (first: rank 0's node, whose name the
    ranks resolve to meet, as on a cluster) and a second one, "<host>-node2"."""
    host = socket.gethostname().split(".")[0]
    return host, f"{host}-node2"


@contextlib.contextmanager
def start_slurm_nodes(workdir: str | os.PathLike, names: Sequence[str]) -> Iterator[SlurmCluster]:
    """Like :func:`start_slurm`, with one ``slurmd -N NAME`` per name, all on this host (each
    with its own port, spool, pid and log file), in one partition: ``srun --nodes 2`` then runs
    its tasks under two slurmd daemons, with SLURM_NODEID 0 and 1 and a two-node nodelist."""
    missing = missing_binaries()
    if missing:
        raise SlurmUnavailable(f"not installed: {', '.join(missing)} (run: bash scripts/setup_slurm.sh)")
    workdir = Path(workdir).resolve()
    (workdir / "state").mkdir(parents=True, exist_ok=True)
    (workdir / "plugstack.conf").write_text("")
    host = socket.gethostname().split(".")[0]
    conf = workdir / "slurm.conf"
    env = dict(os.environ)
    env["SLURM_CONF"] = str(conf)
    env["PATH"] = os.pathsep.join([env.get("PATH", ""), *_SBIN])
    cluster = SlurmCluster(workdir=workdir, conf=conf, env=env, host=host)
    try:
        sock = _start_munge(cluster)
        per_node = {"SlurmdSpoolDir": str(workdir / "spool-%n"), "SlurmdPidFile": str(workdir / "slurmd-%n.pid"),
                    "SlurmdLogFile": str(workdir / "slurmd-%n.log"),
                    # Job ids (and so the ports srun jobs derive from them) unlike other clusters' here.
                    "FirstJobId": str(random.randrange(1000, 19000))}
        text = slurm_conf(workdir=workdir, munge_socket=sock, host=host, node_line=_node_line(),
                          ctld_port=_free_port(), slurmd_port=_free_port(), cluster=f"scorch{os.getpid()}n",
                          extra=per_node)
        lines = text.splitlines()
        node_line = next(line for line in lines if line.startswith("NodeName="))
        attributes = re.sub(r"^NodeName=\S+ NodeAddr=\S+", "", node_line)
        lines = [line for line in lines if not line.startswith(("NodeName=", "PartitionName="))]
        lines += [f"NodeName={name} NodeAddr=127.0.0.1 Port={_free_port()}{attributes}"
                  for name in names]
        lines.append(f"PartitionName=debug Nodes={','.join(names)} Default=YES MaxTime=INFINITE State=UP "
                     "OverSubscribe=FORCE:8")
        conf.write_text("\n".join(lines) + "\n")
        for name in names:
            (workdir / f"spool-{name}").mkdir(exist_ok=True)
        _daemon(cluster, [find_binary("slurmctld") or "slurmctld", "-D", "-f", str(conf), "-c", "-i"], env,
                workdir / "slurmctld.stderr")
        _wait_ctld(cluster)
        for name in names:
            _daemon(cluster, [find_binary("slurmd") or "slurmd", "-D", "-N", name, "-f", str(conf)], env,
                    workdir / f"slurmd-{name}.stderr")
        _wait_nodes(cluster, names)
        yield cluster
    finally:
        cluster.stop()


def _daemon(cluster: SlurmCluster, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
    """Start a daemon of ``cluster`` in its own session, its output in ``log_path``."""
    with open(log_path, "w") as out:  # the daemon keeps its own copy of the descriptor
        cluster._procs.append(subprocess.Popen(argv, env=env, start_new_session=True, stdout=out,
                                               stderr=subprocess.STDOUT))


def _wait_nodes(cluster: SlurmCluster, names: Sequence[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        for proc in cluster._procs:
            if proc.poll() is not None:
                logs = "\n".join((cluster.workdir / f"slurmd-{n}.stderr").read_text(errors="replace")[-2000:] for n in names)
                raise SlurmStartError(f"{' '.join(map(str, proc.args[:4]))} exited {proc.returncode}\n{logs}")
        res = cluster.run(["sinfo", "-h", "-N", "-o", "%N %T"], check=False, timeout=20)
        states = dict(line.split()[:2] for line in res.stdout.splitlines() if len(line.split()) >= 2)
        if all(states.get(n, "").rstrip("*~#") in ("idle", "mixed", "allocated") for n in names):
            return
        time.sleep(0.5)
    raise SlurmStartError(f"nodes not ready after {timeout} s: {states}")
