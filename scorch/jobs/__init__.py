"""scorch.jobs: every SLURM job and local process pool scorch runs.

* :class:`JobSpec` (a frozen dataclass; its fields are the whole schema) and :func:`render`,
  the one pure function that writes every sbatch script scorch writes: a training job
  (``scorch-train --slurm``), a sweep's job array (``scorch-sweep --slurm``) and a generation
  array (``scorch-gen generate``). ``JobSpec.requeue`` picks the shape.
* :func:`submit`: ``sbatch --parsable`` with a timeout, one-line errors.
* :func:`run_local`: the one local pool (parallel jobs, time limit, signal forwarding, exit
  codes, a log per job), used by local sweeps and ``scorch-gen generate --local``.

Nothing here imports torch.
"""
from __future__ import annotations

from .local import LocalJob, PoolResult, run_local
from .render import pattern_safe, render
from .spec import JobSpec, Resources, array_spec, check_memory, check_resources, check_sbatch_option, check_text, check_time, option_lines
from .submit import SubmitError, submit

__all__ = [
                   "JobSpec",
                   "LocalJob",
                   "PoolResult",
                   "Resources",
                   "SubmitError",
                   "array_spec",
                   "check_memory",
                   "check_resources",
                   "check_sbatch_option",
                   "check_text",
                   "check_time",
                   "option_lines",
                   "pattern_safe",
                   "render",
                   "run_local",
                   "submit",
]
