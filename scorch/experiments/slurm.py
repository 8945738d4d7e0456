"""SLURM jobs of scorch-train: its flags, the job's files, its command. The script itself comes
from :func:`scorch.jobs.render` (the train shape: ``JobSpec.requeue``), like every sbatch script
scorch writes, and is submitted by :func:`scorch.jobs.submit`.

A job re-runs the exact resolved config: ``<run>/job_config.json`` (every TrainConfig setting but
the invocation-only ones) is passed to scorch-train with ``--config``, together with ``--name``,
``--run-root`` and ``--auto-resume``, so a requeued job continues from ``checkpoints/last.pt``.

Preemption: ``#SBATCH --signal=B:USR1@SECONDS`` makes SLURM send SIGUSR1 to the batch shell that
long before the time limit. The shell sends SIGUSR1 to the launcher (srun and mpirun both forward
it to every rank); the ranks agree at the next step boundary, rank 0 writes ``last.pt`` and all
exit with code 3. The shell then runs ``scontrol requeue`` and the requeued job resumes from
``last.pt`` in the same run directory (logs are appended). A SIGTERM (``scancel``) is forwarded
the same way, but the job is not requeued.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _atomic
from ..config import INVOCATION_KEYS, TrainConfig
from ..errors import ScorchError
from ..jobs import JobSpec, Resources, SubmitError, check_resources, check_text, render, submit
from ..jobs.spec import LAUNCHERS, TIME_FORMATS
from ..rundir.directory import check_target, recover, replaced_path

log = logging.getLogger(__name__)

JOB_SCRIPT = "job.sbatch"
JOB_CONFIG = "job_config.json"
JOB_FILES = (JOB_SCRIPT, JOB_CONFIG)

# Namespace dests of the flags below; scorch-train removes them before it builds its TrainConfig.
DESTS = (
    "slurm", "submit", "slurm_nodes", "slurm_ntasks_per_node", "slurm_gpus_per_node", "slurm_cpus_per_task",
    "slurm_time", "slurm_mem", "slurm_partition", "slurm_account", "slurm_sbatch_args", "slurm_setup",
    "slurm_launcher", "slurm_signal_seconds",
)
_FLAGS = {"sbatch_args": "--sbatch-arg"}


def _flag(field: str) -> str:
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


@dataclass(frozen=True, kw_only=True)
class SlurmOptions(Resources):
    """How a run is laid out on SLURM (the fields of :class:`scorch.jobs.Resources`). Checks
    itself; errors name the flag to change."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sbatch_args", tuple(self.sbatch_args))
        object.__setattr__(self, "setup", tuple(self.setup))
        if self.launcher not in LAUNCHERS:
            raise ScorchError(f"--launcher: {self.launcher!r} is not one of {', '.join(LAUNCHERS)}")
        try:
            check_resources(self, _flag)
        except ValueError as exc:
            raise ScorchError(str(exc)) from None
        for name in ("time", "mem", "partition", "account"):
            value = getattr(self, name)
            if value is not None and any(c.isspace() for c in str(value)):
                raise ScorchError(f"{_flag(name)}: {value!r} is not a valid value (no spaces)")


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
    g.add_argument("--time", dest="slurm_time", help=f"time limit as sbatch takes it: {TIME_FORMATS}")
    g.add_argument("--mem", dest="slurm_mem", help="memory per node as sbatch takes it: e.g. 500M, 8G, or whole MB "
                   "(default: the cluster's)")
    g.add_argument("--partition", dest="slurm_partition", help="SLURM partition")
    g.add_argument("--account", dest="slurm_account", help="SLURM account to charge")
    g.add_argument("--sbatch-arg", action="append", dest="slurm_sbatch_args", metavar="OPTION",
                   help="raw #SBATCH option, repeatable, e.g. --sbatch-arg=--qos=high --sbatch-arg=--exclusive")
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


def check_job_target(run_dir: Path, resume: bool, overwrite: bool, auto_resume: bool = False) -> None:
    """Refuse a run directory as scorch-train would; one that holds only job files counts as empty.
    With --auto-resume any directory is accepted: the job resumes it or starts it, as scorch-train does."""
    leftovers = [p for p in run_dir.iterdir() if p.name not in JOB_FILES] if run_dir.is_dir() else []
    if (run_dir.is_dir() and not leftovers and not resume) or (auto_resume and not overwrite):
        return
    verdict = check_target(run_dir, resume, overwrite)
    if verdict:
        raise ScorchError(verdict)


def job_spec(options: SlurmOptions, **what: Any) -> JobSpec:
    """The :class:`scorch.jobs.JobSpec` of a job laid out by ``options`` (``what``: its commands,
    name, directories); a value no script may hold is a ScorchError."""
    try:
        return JobSpec(**options.resources(), **what)
    except ValueError as exc:
        raise ScorchError(str(exc)) from None


def check_job_values(**values: str) -> None:
    """ScorchError naming the flag (``run_root`` -> ``--run-root``) of the first value with a
    control character; ``cwd`` is the working directory the job starts in."""
    for key, value in values.items():
        try:
            check_text("the working directory" if key == "cwd" else _flag(key), value)
        except ValueError as exc:
            raise ScorchError(str(exc)) from None


def write_job(config: TrainConfig, options: SlurmOptions, name: str) -> Path:
    """Write ``<run>/job_config.json`` and ``<run>/job.sbatch`` for ``config``; returns the script's path.

    The run directory must be new or empty (or hold only job files), as for scorch-train; with
    ``--resume`` it must hold ``checkpoints/last.pt``; with ``--auto-resume`` anything goes;
    ``--overwrite`` moves the old run aside (:func:`scorch.rundir.directory.replaced_path`): the caller
    drops it once the job is written (and submitted) with :func:`replaced_by_job`, or puts it back.
    Every check, the script's included, comes before the first write; a failed write puts the old
    run back itself. The caller holds the run's lock.
    """
    if config.nproc_per_node > 1:
        raise ScorchError("--nproc-per-node does not apply to a SLURM job: give --ntasks-per-node (and --nodes)")
    cwd = os.getcwd()
    check_job_values(cwd=cwd, name=name, run_root=config.run_root)
    run_root = Path(os.path.abspath(config.run_root))
    run_dir = run_root / name
    check_job_target(run_dir, config.resume, config.overwrite, config.auto_resume)
    script = render(job_spec(
        options, commands=[train_command(run_dir / JOB_CONFIG, run_root, name, debug=config.debug)],
        job_name=name, chdir=cwd, log_dir=str(run_dir), log_name="slurm-%j.out",
    ))
    recover(run_dir)  # what an interrupted --overwrite left, first
    aside = replaced_path(run_dir) if config.overwrite and run_dir.is_dir() else None
    try:
        try:
            if aside is not None:
                os.rename(run_dir, aside)
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ScorchError(f"cannot create run directory {run_dir}: {exc.strerror or exc}") from exc
        _atomic.write_json(run_dir / JOB_CONFIG, job_config(config))
        path = run_dir / JOB_SCRIPT
        _atomic.write_text(path, script)
    except BaseException:
        put_back(run_dir, aside is not None)
        raise
    log.debug("wrote %s", path)
    return path


def replaced_by_job(run_dir: Path) -> None:
    """The job that --overwrite wrote (and submitted) is in place: the old run goes."""
    shutil.rmtree(replaced_path(run_dir), ignore_errors=True)


def put_back(run_dir: Path, moved: bool) -> None:
    """Writing or submitting the job failed: its files go, and an old run moved aside comes back."""
    aside = replaced_path(run_dir)
    if not moved or not aside.is_dir():
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    os.rename(aside, run_dir)


def submit_script(script: Path, env: Mapping[str, str] | None = None) -> str:
    """:func:`scorch.jobs.submit`, its error a ScorchError (one line, exit code 2)."""
    try:
        return submit(script, env)
    except SubmitError as exc:
        raise ScorchError(str(exc)) from None
