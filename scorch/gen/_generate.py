"""``generate``: split samples over jobs and run them on SLURM or as local processes."""
from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _atomic, jobs
from ._generator import GeneratorSpec, get_spec, sbatch_lines
from ._moves import recover
from ._params import Params, format_values
from ._stats import TimeStats, time_stats
from ._store import ParamSetDir, param_set_dir
from ._timing import split_samples, time_limit_minutes
from .errors import GenError, JobsFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerateRequest:
    """What ``scorch-gen generate`` was asked to do (already validated by the CLI)."""

    directory: Path
    dataset: str
    n: int
    jobs: int
    params: Mapping[str, Any] = field(default_factory=dict)
    time_minutes: int | None = None
    local: bool = False
    max_parallel: int | None = None  # local only; None: os.cpu_count()
    slurm_options: tuple[str, ...] = ()  # sbatch command-line words ("--qos=high", "-p", "gpu"), or their text

    def __post_init__(self) -> None:
        if self.n < 1:
            raise GenError(f"-n {self.n}: expected a positive number of samples")
        if self.jobs < 1:
            raise GenError(f"--jobs {self.jobs}: expected a positive number of jobs")
        if self.time_minutes is not None and self.time_minutes < 1:
            raise GenError(f"--time {self.time_minutes}: expected whole minutes >= 1")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise GenError(f"--max-parallel {self.max_parallel}: expected a whole number >= 1 "
                           "(leave it out for one process per CPU)")
        sbatch_lines("--slurm-options", self.slurm_options)  # checked here, before anything runs
        if isinstance(self.slurm_options, str):
            object.__setattr__(self, "slurm_options", tuple(shlex.split(self.slurm_options)))
        if not self.local:  # the directory reaches the job script
            try:
                jobs.check_text("--dir", str(self.directory))
            except ValueError as exc:
                raise GenError(str(exc)) from None


@dataclass(frozen=True)
class GenerateOutcome:
    """What was started: a SLURM array (``job_id``) or finished local jobs."""

    dataset: str
    params: Params
    sizes: tuple[int, ...]
    time_minutes: int
    log_dir: Path
    job_id: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)


def resolve(directory: Path, dataset: str,
            params: Mapping[str, Any] | None) -> tuple[GeneratorSpec, Params, ParamSetDir]:
    """The generator, its Params and the cache directory for a dataset + non-default values."""
    spec = get_spec(directory, dataset)
    values = spec.make_params(params)
    return spec, values, param_set_dir(directory, spec.name, values.param_id())


def worker_command(req: GenerateRequest, params: Params) -> list[str]:
    """The command each job runs (plus ``--task I`` for local jobs)."""
    return [sys.executable, "-m", "scorch.gen._worker", "--dir", str(req.directory),
            "--dataset", req.dataset, "--params-json", params.canonical_json(),
            "--param-id", params.param_id(), "--total", str(req.n), "--jobs", str(req.jobs)]


def pick_time_limit(req: GenerateRequest, stats: TimeStats, samples_per_job: int,
                    label: str) -> int:
    """``--time`` if given, else from the history; no history is an error asking for it."""
    if req.time_minutes is not None:
        return req.time_minutes
    if stats.samples == 0:
        raise GenError(f"no recorded sample times for {label}; pass --time MINUTES "
                       "(the job time limit) for this first run")
    return time_limit_minutes(stats, samples_per_job)


def generate(req: GenerateRequest, env: Mapping[str, str] | None = None) -> GenerateOutcome:
    """Start (SLURM) or run (local) the generation jobs of *req*."""
    spec, params, ps = resolve(req.directory, req.dataset, req.params)
    n_jobs = min(req.jobs, req.n)
    if n_jobs < req.jobs:
        log.info("only %d samples: using %d jobs instead of %d", req.n, n_jobs, req.jobs)
        req = dataclasses.replace(req, jobs=n_jobs)
    sizes = split_samples(req.n, req.jobs)
    if ps.root.is_dir():
        recover(ps)
        ps.clean_tmp()
        stats = time_stats(ps)
    else:
        stats = TimeStats.from_sums(0, 0.0, 0.0)
    label = f"{spec.name} {format_values(params.non_defaults())} [{ps.param_id}]"
    minutes = pick_time_limit(req, stats, max(sizes), label)  # before anything is created
    stamp = time.strftime("%Y%m%d-%H%M%S")
    command = worker_command(req, params)
    if req.local:
        ps.ensure(spec.name, params.values())
        _run_local(req, command, ps, minutes, stamp)
        return GenerateOutcome(spec.name, params, tuple(sizes), minutes, ps.logs, counts=ps.counts())
    script = jobs.render(array_spec(req, spec, ps, command, minutes))  # before anything is written
    ps.ensure(spec.name, params.values())
    path = ps.logs / f"sbatch-{stamp}.sh"
    _atomic.write_text(path, script)
    try:
        job_id = jobs.submit(path, env)
    except jobs.SubmitError as exc:
        if exc.refused:
            raise JobsFailed(str(exc)) from None
        raise GenError(f"{exc}; or pass --local to generate with local processes") from None
    return GenerateOutcome(spec.name, params, tuple(sizes), minutes, ps.logs, job_id=job_id)


def array_spec(req: GenerateRequest, spec: GeneratorSpec, ps: ParamSetDir, command: list[str],
               minutes: int) -> jobs.JobSpec:
    """The job array: every task runs the worker, which finds its share from SLURM_ARRAY_TASK_ID;
    the generator's ``slurm_options`` and ``--slurm-options`` are ``#SBATCH`` lines of the script."""
    try:
        return jobs.JobSpec(
            commands=(tuple(command),), job_name=f"gen-{spec.name}-{ps.param_id}", chdir=str(req.directory),
            log_dir=str(ps.logs), log_name="%A_%a.out", array=jobs.array_spec(range(req.jobs)), requeue=False,
            launcher=None, cpus_per_task=1, time=str(minutes), mem=f"{spec.memory_mb}M",
            sbatch_args=(*spec.slurm_options, *jobs.option_lines(req.slurm_options)))
    except ValueError as exc:
        raise GenError(str(exc)) from None


def _run_local(req: GenerateRequest, command: list[str], ps: ParamSetDir, minutes: int, stamp: str) -> None:
    """The jobs as local processes (``--task I``); JobsFailed naming the first failed one."""
    pool = [jobs.LocalJob(f"job {i}", (*command, "--task", str(i)), ps.logs / f"local-{stamp}-{i}.log")
            for i in range(req.jobs)]
    result = jobs.run_local(pool, max_parallel=req.max_parallel or os.cpu_count() or 1, time_limit_s=minutes * 60.0)
    if result.stopped_by:
        done = sum(code == 0 for code in result.codes)
        raise JobsFailed(f"stopped by {result.stopped_by}: {done} of {req.jobs} local jobs finished; the samples "
                         "they saved count, generate again for the rest")
    failed = result.failed()
    if failed:
        first = failed[0]
        limit = f" after its time limit of {minutes} min" if first in result.timed_out else ""
        raise JobsFailed(f"{len(failed)} of {req.jobs} local jobs failed (first: job {first}, exit code "
                         f"{result.codes[first]}{limit}); see {pool[first].log_path}")
