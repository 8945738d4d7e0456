"""The sbatch script of a generation job array, and submitting it."""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from .._atomic import write_bytes as atomic_write_bytes
from .errors import GenError, JobsFailed

log = logging.getLogger(__name__)


def sbatch_script(*, command: Sequence[str], job_name: str, array_size: int, time_minutes: int,
                  memory_mb: int, output: str, chdir: str, cpus_per_task: int = 1) -> str:
    """Text of a job-array script that runs *command* in every task.

    The keyword arguments are the whole schema; ``#SBATCH`` flags are sorted
    and every value is ``shlex``-quoted (sbatch unquotes them), so paths with
    spaces or quotes are safe. Options the user adds (``slurm_options``) go on
    the sbatch command line, where they override these.
    """
    if array_size < 1:
        raise ValueError(f"array_size must be >= 1, got {array_size}")
    flags = {
        "array": f"0-{array_size - 1}",
        "chdir": chdir,
        "cpus-per-task": str(cpus_per_task),
        "job-name": job_name,
        "mem": f"{memory_mb}M",
        "output": output,
        "time": str(time_minutes),
    }
    lines = ["#!/bin/bash"]
    lines += [f"#SBATCH --{key}={shlex.quote(value)}" for key, value in sorted(flags.items())]
    lines += ["", "# written by scorch-gen; each array task generates its share of the samples",
              "exec " + " ".join(shlex.quote(part) for part in command), ""]
    return "\n".join(lines)


def submit(script: str, script_path: Path, options: Sequence[str],
           env: Mapping[str, str] | None = None) -> str:
    """Write *script* atomically to *script_path*, ``sbatch`` it, return the job id."""
    sbatch = shutil.which("sbatch", path=(env or os.environ).get("PATH"))
    if sbatch is None:
        raise GenError("sbatch not found on PATH; run on a SLURM login node, or pass --local "
                       "to generate with local processes")
    atomic_write_bytes(script_path, script.encode())
    argv = [sbatch, "--parsable", *options, str(script_path)]
    log.info("running %s", " ".join(shlex.quote(a) for a in argv))
    proc = subprocess.run(argv, capture_output=True, text=True,
                          env=dict(env) if env is not None else None, timeout=120)
    if proc.returncode != 0:
        msg = " ".join((proc.stderr or proc.stdout).split())
        raise JobsFailed(f"sbatch refused {script_path}: {msg}")
    return proc.stdout.strip().split(";")[0]
