"""Submitting a written sbatch script: :func:`submit`."""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from ..errors import EXIT_BAD_INPUT, EXIT_FAILURE, Error

log = logging.getLogger(__name__)
SBATCH_TIMEOUT_S = 120.0


class SubmitError(Error):
    """sbatch is missing (``refused`` False: exit code 2, the user must run it where SLURM is) or did not
    take the script (``refused`` True: exit code 1, SLURM's refusal); one line."""

    def __init__(self, message: str, refused: bool) -> None:
        super().__init__(message)
        self.refused = refused
        self.exit_code = EXIT_FAILURE if refused else EXIT_BAD_INPUT


def submit(script: str | os.PathLike, env: Mapping[str, str] | None = None) -> str:
    """``sbatch --parsable SCRIPT``; returns the job id (an array's id for an array).

    Everything the job asks for is in the script's ``#SBATCH`` lines, so the kept script is the
    whole record of what was submitted. Raises :class:`SubmitError` when sbatch is not on PATH,
    cannot be run, takes longer than two minutes, or refuses the script.
    """
    environ = os.environ if env is None else env
    sbatch = shutil.which("sbatch", path=environ.get("PATH"))
    if sbatch is None:
        raise SubmitError(f"sbatch not found on PATH: run on a SLURM login node; the script is written at {script}",
                          refused=False)
    argv = [sbatch, "--parsable", str(script)]
    log.debug("running %s", " ".join(shlex.quote(a) for a in argv))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=dict(environ), timeout=SBATCH_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SubmitError(f"sbatch {script} did not run: {' '.join(str(exc).split())}", refused=True) from exc
    if proc.returncode != 0:
        raise SubmitError(f"sbatch refused {script}: {' '.join((proc.stderr or proc.stdout).split())}", refused=True)
    job_id = proc.stdout.strip().split(";")[0]
    if not job_id:
        raise SubmitError(f"sbatch took {script} but printed no job id", refused=True)
    log.info("submitted %s as SLURM job %s", Path(script).name, job_id)
    return job_id
