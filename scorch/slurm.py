"""SLURM jobs of scorch-train: the sbatch script (one pure function), the job's files, submitting.

A job re-runs the exact resolved config: ``<run>/job_config.json`` (every TrainConfig setting but
the invocation-only ones) is passed to scorch-train with ``--config``, together with ``--name``,
``--run-root`` and ``--auto-resume``, so a requeued job continues from ``checkpoints/last.pt``.

Preemption: ``#SBATCH --signal=B:USR1@SECONDS`` makes SLURM send SIGUSR1 to the batch shell that
long before the time limit. The shell traps USR1 and TERM and sends SIGUSR1 to the launcher
(srun and mpirun both forward it to every rank); the ranks agree at the next step boundary,
rank 0 writes ``last.pt`` and all exit with code 3. The shell then runs ``scontrol requeue`` and
the requeued job resumes from ``last.pt`` in the same run directory (logs are appended).
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import _atomic
from .config import INVOCATION_KEYS, TrainConfig
from .errors import EXIT_PREEMPTED, ScorchError
from .rundir import check_target

log = logging.getLogger(__name__)

LAUNCHERS = ("srun", "mpirun")
JOB_SCRIPT = "job.sbatch"
JOB_CONFIG = "job_config.json"
JOB_FILES = (JOB_SCRIPT, JOB_CONFIG)

# Namespace dests of the flags below; scorch-train removes them before it builds its TrainConfig.
DESTS = (
    "slurm", "submit", "slurm_nodes", "slurm_ntasks_per_node", "slurm_gpus_per_node", "slurm_cpus_per_task",
    "slurm_time", "slurm_partition", "slurm_account", "slurm_sbatch_args", "slurm_setup", "slurm_launcher",
    "slurm_signal_seconds",
)


@dataclass(frozen=True)
class SlurmOptions:
    """How a run is laid out on SLURM. Checks itself; errors name the flag to change."""

    nodes: int = 1
    ntasks_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int | None = None
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    sbatch_args: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    launcher: str = "srun"
    signal_seconds: int = 90

    def __post_init__(self) -> None:
        for name in ("nodes", "ntasks_per_node"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ScorchError(f"--{name.replace('_', '-')}: expected a whole number >= 1, got {getattr(self, name)!r}")
        if self.gpus_per_node < 0:
            raise ScorchError(f"--gpus-per-node: expected a whole number >= 0, got {self.gpus_per_node!r}")
        if self.cpus_per_task is not None and self.cpus_per_task < 1:
            raise ScorchError(f"--cpus-per-task: expected a whole number >= 1, got {self.cpus_per_task!r}")
        if self.signal_seconds < 1:
            raise ScorchError(f"--signal-seconds: expected a whole number >= 1, got {self.signal_seconds!r}")
        if self.launcher not in LAUNCHERS:
            raise ScorchError(f"--launcher: {self.launcher!r} is not one of {', '.join(LAUNCHERS)}")
        for flag, lines in (("--sbatch-arg", self.sbatch_args), ("--setup", self.setup)):
            for line in lines:
                if "\n" in line or "\r" in line or not line.strip():
                    raise ScorchError(f"{flag}: {line!r} must be one non-empty line")
        for line in self.sbatch_args:
            if not _raw_sbatch_arg(line).startswith("-"):
                raise ScorchError(f"--sbatch-arg: {line!r} is not an sbatch option; expected e.g. --qos=high or --mem=8G")
        for name in ("time", "partition", "account"):
            value = getattr(self, name)
            if value is not None and (not str(value).strip() or any(c.isspace() for c in str(value))):
                raise ScorchError(f"--{name}: {value!r} is not a valid value (no spaces)")

    @property
    def ntasks(self) -> int:
        return self.nodes * self.ntasks_per_node


def _raw_sbatch_arg(line: str) -> str:
    """``--qos=x`` or ``#SBATCH --qos=x`` -> ``--qos=x``."""
    text = line.strip()
    return text[len("#SBATCH"):].strip() if text.startswith("#SBATCH") else text


def add_arguments(parser: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    """The SLURM flag group shared by scorch-train and scorch-sweep (dests in :data:`DESTS`)."""
    g = parser.add_argument_group("SLURM" + (" (one job array, one element per run)" if sweep else
                                             " (write a job script instead of training)"))
    if sweep:
        g.add_argument("--slurm", action="store_true", dest="slurm",
                       help="submit the unfinished runs as one SLURM job array instead of running them here")
    else:
        g.add_argument("--slurm", action="store_true", dest="slurm",
                       help=f"write <run>/{JOB_SCRIPT} and <run>/{JOB_CONFIG} and stop (no training here)")
        g.add_argument("--submit", action="store_true", dest="submit",
                       help="like --slurm, then submit the script with sbatch and print the job id")
    d = SlurmOptions()
    g.add_argument("--nodes", type=int, dest="slurm_nodes", help=f"nodes per job (default: {d.nodes})")
    g.add_argument("--ntasks-per-node", type=int, dest="slurm_ntasks_per_node",
                   help=f"ranks per node (default: {d.ntasks_per_node})")
    g.add_argument("--gpus-per-node", type=int, dest="slurm_gpus_per_node",
                   help=f"GPUs per node (default: {d.gpus_per_node}: none asked for)")
    g.add_argument("--cpus-per-task", type=int, dest="slurm_cpus_per_task",
                   help="CPU cores per rank (default: the cluster's)")
    g.add_argument("--time", dest="slurm_time", help="time limit as sbatch takes it: MINUTES or D-HH:MM:SS")
    g.add_argument("--partition", dest="slurm_partition", help="SLURM partition")
    g.add_argument("--account", dest="slurm_account", help="SLURM account to charge")
    g.add_argument("--sbatch-arg", action="append", dest="slurm_sbatch_args", metavar="OPTION",
                   help="raw #SBATCH option, repeatable, e.g. --sbatch-arg=--qos=high --sbatch-arg=--mem=8G")
    g.add_argument("--setup", action="append", dest="slurm_setup", metavar="LINE",
                   help="shell line run before the ranks start, repeatable, e.g. --setup 'module load cuda/12'")
    g.add_argument("--launcher", choices=LAUNCHERS, dest="slurm_launcher",
                   help=f"how the job starts its ranks (default: {d.launcher})")
    g.add_argument("--signal-seconds", type=int, dest="slurm_signal_seconds",
                   help=f"SLURM sends SIGUSR1 this long before the time limit: checkpoint and requeue "
                   f"(default: {d.signal_seconds})")


def options_from(given: Mapping[str, Any]) -> SlurmOptions:
    """SlurmOptions from a parsed namespace (as a dict); flags not given keep their defaults."""
    values: dict[str, Any] = {}
    for dest, value in given.items():
        if dest.startswith("slurm_") and value is not None:
            name = dest[len("slurm_"):]
            values[name] = tuple(value) if name in ("sbatch_args", "setup") else value
    return SlurmOptions(**values)


def train_executable() -> list[str]:
    """The scorch-train of this environment, as an absolute path: a job's PATH may not have it."""
    script = Path(os.path.abspath(sys.executable)).parent / "scorch-train"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [os.path.abspath(sys.executable), "-m", "scorch.cli.train"]


def job_config(config: TrainConfig) -> dict[str, Any]:
    """The resolved settings a job re-runs: no invocation-only keys, file paths made absolute."""
    out = {k: v for k, v in config.to_dict().items() if k not in INVOCATION_KEYS}
    for key in ("model", "dataset"):
        out[key] = os.path.abspath(out[key])
    if out.get("dataset_path") and os.path.exists(out["dataset_path"]):
        out["dataset_path"] = os.path.abspath(out["dataset_path"])
    return out


def train_command(config_file: str | os.PathLike, run_root: str | os.PathLike, name: str, *,
                  debug: bool = False, extra: Sequence[str] = ()) -> list[str]:
    """The scorch-train command line that runs (or resumes) one configured run."""
    cmd = [*train_executable(), "--config", str(config_file), "--run-root", str(run_root), "--name", name,
           "--auto-resume", "--no-progress", *extra]
    return [*cmd, "--debug"] if debug else cmd


def _pattern_safe(path: str) -> str:
    """sbatch expands %j, %A ... in --output; a literal % in a directory name is written %%."""
    return path.replace("%", "%%")


def render_sbatch(*, commands: Sequence[Sequence[str]], job_name: str, output: str, chdir: str,
                  nodes: int = 1, ntasks_per_node: int = 1, gpus_per_node: int = 0,
                  cpus_per_task: int | None = None, time: str | None = None, partition: str | None = None,
                  account: str | None = None, sbatch_args: Sequence[str] = (), setup: Sequence[str] = (),
                  launcher: str = "srun", signal_seconds: int = 90, array: str | None = None) -> str:
    """Text of the sbatch script. Pure; the keyword arguments are the whole schema.

    ``commands`` holds one command for a plain job; for a job array (``array``, e.g. ``"0-3%2"``)
    element *i* runs ``commands[i]``. ``#SBATCH`` flags are sorted and their values
    ``shlex``-quoted (sbatch unquotes them); ``sbatch_args`` follow verbatim, in order, so they can
    override. ``output`` is an sbatch filename pattern (``%j``, ``%A_%a``); ``setup`` lines run
    before the launch.
    """
    if not commands or any(not c for c in commands):
        raise ValueError("commands must hold at least one non-empty command")
    if array is None and len(commands) != 1:
        raise ValueError(f"{len(commands)} commands need an array spec")
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    flags: dict[str, str | None] = {
        "chdir": chdir,
        "job-name": job_name,
        "nodes": str(nodes),
        "ntasks-per-node": str(ntasks_per_node),
        "open-mode": "append",  # a requeued job appends to the same log
        "output": output,
        "requeue": None,
        "signal": f"B:USR1@{signal_seconds}",
    }
    optional = {"array": array, "account": account, "partition": partition, "time": time,
                "cpus-per-task": str(cpus_per_task) if cpus_per_task else None,
                "gpus-per-node": str(gpus_per_node) if gpus_per_node else None}
    flags.update({k: v for k, v in optional.items() if v is not None})
    lines = ["#!/bin/bash"]
    lines += [f"#SBATCH --{k}" if v is None else f"#SBATCH --{k}={shlex.quote(v)}" for k, v in sorted(flags.items())]
    lines += [f"#SBATCH {_raw_sbatch_arg(a)}" for a in sbatch_args]
    ranks = f"{nodes * ntasks_per_node} rank(s) on {nodes} node(s)"
    lines += [
        "",
        f"# Written by scorch: {'one run per array element' if array is not None else 'one run'}, {ranks}, started by {launcher}.",
        f"# SLURM sends USR1 {signal_seconds} s before the time limit; the ranks then checkpoint at the next",
        f"# step boundary and exit {EXIT_PREEMPTED}, and the job requeues itself; --auto-resume continues from last.pt.",
    ]
    lines += list(setup)
    lines.append("")

    def argv(cmd: Sequence[str]) -> str:
        return "cmd=(" + " ".join(shlex.quote(str(part)) for part in cmd) + ")"

    if array is None:
        lines.append(argv(commands[0]))
    else:
        lines.append('case "${SLURM_ARRAY_TASK_ID:-}" in')
        lines += [f"  {i}) {argv(cmd)} ;;" for i, cmd in enumerate(commands)]
        lines.append("""  *) echo "scorch job: no run for array task '${SLURM_ARRAY_TASK_ID:-}'" >&2; exit 2 ;;""")
        lines.append("esac")
    launch = ["srun", *([f"--cpus-per-task={cpus_per_task}"] if cpus_per_task else [])] if launcher == "srun" else ["mpirun"]
    lines += [
        "",
        "# Either signal reaches this shell only; the ranks get USR1 through the launcher, which forwards it.",
        'on_signal() { echo "scorch job: got SIG$1; the ranks checkpoint and stop" >&2; kill -s USR1 "$child" 2>/dev/null; }',
        "trap 'on_signal USR1' USR1",
        "trap 'on_signal TERM' TERM",
        " ".join(launch) + ' "${cmd[@]}" &',
        "child=$!",
        "# wait returns early when a trapped signal arrives: wait until the launcher has ended, then take its code.",
        'while kill -0 "$child" 2>/dev/null; do wait "$child"; done',
        'wait "$child"',
        "code=$?",
        f'if [ "$code" -eq {EXIT_PREEMPTED} ]; then',
        '  echo "scorch job: checkpoint written; requeueing job $SLURM_JOB_ID" >&2',
        '  scontrol requeue "$SLURM_JOB_ID"',
        "fi",
        'exit "$code"',
        "",
    ]
    return "\n".join(lines)


def render_for(options: SlurmOptions, *, commands: Sequence[Sequence[str]], job_name: str, output: str,
               chdir: str, array: str | None = None) -> str:
    """:func:`render_sbatch` with the fields of ``options``."""
    return render_sbatch(
        commands=commands, job_name=job_name, output=output, chdir=chdir, array=array,
        nodes=options.nodes, ntasks_per_node=options.ntasks_per_node, gpus_per_node=options.gpus_per_node,
        cpus_per_task=options.cpus_per_task, time=options.time, partition=options.partition,
        account=options.account, sbatch_args=options.sbatch_args, setup=options.setup,
        launcher=options.launcher, signal_seconds=options.signal_seconds,
    )


def check_job_target(run_dir: Path, resume: bool, overwrite: bool, auto_resume: bool = False) -> None:
    """Refuse a run directory as scorch-train would; one that holds only job files counts as empty.
    With --auto-resume any directory is accepted: the job resumes it or starts it, as scorch-train does."""
    leftovers = [p for p in run_dir.iterdir() if p.name not in JOB_FILES] if run_dir.is_dir() else []
    if (run_dir.is_dir() and not leftovers and not resume) or (auto_resume and not overwrite):
        return
    verdict = check_target(run_dir, resume, overwrite)
    if verdict:
        raise ScorchError(verdict)


def write_job(config: TrainConfig, options: SlurmOptions, name: str) -> Path:
    """Write ``<run>/job_config.json`` and ``<run>/job.sbatch`` for ``config``; returns the script's path.

    The run directory must be new or empty (or hold only job files), as for scorch-train; with
    ``--resume`` it must hold ``checkpoints/last.pt``; with ``--auto-resume`` anything goes;
    ``--overwrite`` empties it now.
    """
    if config.nproc_per_node > 1:
        raise ScorchError("--nproc-per-node does not apply to a SLURM job: give --ntasks-per-node (and --nodes)")
    run_root = Path(os.path.abspath(config.run_root))
    run_dir = run_root / name
    check_job_target(run_dir, config.resume, config.overwrite, config.auto_resume)
    try:
        if config.overwrite and run_dir.is_dir():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScorchError(f"cannot create run directory {run_dir}: {exc.strerror or exc}") from exc
    _atomic.write_json(run_dir / JOB_CONFIG, job_config(config))
    script = render_for(
        options,
        commands=[train_command(run_dir / JOB_CONFIG, run_root, name, debug=config.debug)],
        job_name=name, output=_pattern_safe(str(run_dir)) + "/slurm-%j.out", chdir=os.getcwd(),
    )
    path = run_dir / JOB_SCRIPT
    _atomic.write_text(path, script)
    log.debug("wrote %s", path)
    return path


def submit(script: Path, env: Mapping[str, str] | None = None) -> str:
    """``sbatch --parsable SCRIPT``; returns the job id. ScorchError (one line) when sbatch is
    missing or refuses the script."""
    environ = os.environ if env is None else env
    sbatch = shutil.which("sbatch", path=environ.get("PATH"))
    if sbatch is None:
        raise ScorchError(f"sbatch not found on PATH: run on a SLURM login node; the script is written at {script}")
    argv = [sbatch, "--parsable", str(script)]
    log.debug("running %s", " ".join(shlex.quote(a) for a in argv))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=dict(environ), timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ScorchError(f"sbatch {script} did not run: {exc}") from exc
    if proc.returncode != 0:
        raise ScorchError(f"sbatch refused {script}: {' '.join((proc.stderr or proc.stdout).split())}")
    return proc.stdout.strip().split(";")[0]


def array_spec(indices: Sequence[int], parallel: int | None = None) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"`` (``"0-2,5%2"`` with ``parallel=2``)."""
    if not indices:
        raise ValueError("an array needs at least one index")
    parts: list[str] = []
    ordered = sorted(set(indices))
    start = prev = ordered[0]
    for i in [*ordered[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ",".join(parts) + (f"%{parallel}" if parallel else "")
