"""``generate``: split samples over jobs and run them on SLURM or as local processes."""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ._generator import GeneratorSpec, get_spec
from ._local import LocalJob, run_local
from ._moves import recover
from ._params import Params, format_values
from ._slurm import sbatch_script, submit
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
    max_parallel: int = 0  # local only; 0 means os.cpu_count()
    slurm_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.n < 1:
            raise GenError(f"-n {self.n}: expected a positive number of samples")
        if self.jobs < 1:
            raise GenError(f"--jobs {self.jobs}: expected a positive number of jobs")
        if self.time_minutes is not None and self.time_minutes < 1:
            raise GenError(f"--time {self.time_minutes}: expected whole minutes >= 1")
        if self.max_parallel < 0:
            raise GenError(f"--max-parallel {self.max_parallel}: expected >= 0")


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
    jobs = min(req.jobs, req.n)
    if jobs < req.jobs:
        log.info("only %d samples: using %d jobs instead of %d", req.n, jobs, req.jobs)
        req = dataclasses.replace(req, jobs=jobs)
    sizes = split_samples(req.n, req.jobs)
    if ps.root.is_dir():
        recover(ps)
        ps.clean_tmp()
        stats = time_stats(ps)
    else:
        stats = TimeStats.from_sums(0, 0.0, 0.0)
    label = f"{spec.name} {format_values(params.non_defaults())} [{ps.param_id}]"
    minutes = pick_time_limit(req, stats, max(sizes), label)  # before anything is created
    ps.ensure(spec.name, params.values())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    command = worker_command(req, params)
    if req.local:
        jobs_ = [LocalJob((*command, "--task", str(i)), ps.logs / f"local-{stamp}-{i}.log")
                 for i in range(req.jobs)]
        codes = run_local(jobs_, max_parallel=req.max_parallel or os.cpu_count() or 1,
                          time_limit_s=minutes * 60.0)
        failed = [i for i, code in enumerate(codes) if code != 0]
        if failed:
            raise JobsFailed(f"{len(failed)} of {req.jobs} local jobs failed (first: job "
                             f"{failed[0]}, exit code {codes[failed[0]]}); see "
                             f"{jobs_[failed[0]].log_path}")
        return GenerateOutcome(spec.name, params, tuple(sizes), minutes, ps.logs,
                               counts=ps.counts())
    script = sbatch_script(command=command, job_name=f"gen-{spec.name}-{ps.param_id}",
                           array_size=req.jobs, time_minutes=minutes,
                           memory_mb=spec.memory_mb, output=str(ps.logs / "%A_%a.out"),
                           chdir=str(req.directory))
    job_id = submit(script, ps.logs / f"sbatch-{stamp}.sh",
                    [*spec.slurm_options, *req.slurm_options], env=env)
    return GenerateOutcome(spec.name, params, tuple(sizes), minutes, ps.logs, job_id=job_id)
