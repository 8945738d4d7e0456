"""The one function that writes sbatch scripts: :func:`render`."""
from __future__ import annotations

import shlex
from collections.abc import Sequence

from ..errors import EXIT_PREEMPTED
from ..rundir.layout import LAST
from .spec import JobSpec, sbatch_option


def pattern_safe(path: str) -> str:
    """sbatch expands ``%j``, ``%A`` ... in ``--output``; a literal ``%`` in a path is written ``%%``."""
    return path.replace("%", "%%")


def _argv(cmd: Sequence[str]) -> str:
    return "cmd=(" + " ".join(shlex.quote(part) for part in cmd) + ")"


def _flags(spec: JobSpec) -> list[str]:
    """The ``#SBATCH`` lines: sorted, values ``shlex``-quoted (sbatch unquotes them), then the raw
    options in their order, so they can override."""
    flags: dict[str, str | None] = {
        "chdir": spec.chdir,
        "job-name": spec.job_name,
        "nodes": str(spec.nodes),
        "ntasks-per-node": str(spec.ntasks_per_node),
        "output": pattern_safe(spec.log_dir.rstrip("/") or "/") + "/" + spec.log_name,
    }
    if spec.requeue:
        # A requeued job appends to the same log; the warning signal goes to the batch shell only.
        flags.update({"open-mode": "append", "requeue": None, "signal": f"B:USR1@{spec.signal_seconds}"})
    optional = {"array": spec.array, "account": spec.account, "partition": spec.partition, "time": spec.time,
                "mem": spec.mem, "cpus-per-task": str(spec.cpus_per_task) if spec.cpus_per_task else None,
                "gpus-per-node": str(spec.gpus_per_node) if spec.gpus_per_node else None}
    flags.update({k: v for k, v in optional.items() if v is not None})
    lines = [f"#SBATCH --{k}" if v is None else f"#SBATCH --{k}={shlex.quote(v)}" for k, v in sorted(flags.items())]
    return lines + [f"#SBATCH {sbatch_option(a)}" for a in spec.sbatch_args]


def _about(spec: JobSpec) -> list[str]:
    if spec.array is None:
        what = "one run"
    elif len(spec.commands) > 1:
        what = "one run per array element"
    else:
        what = "every array element runs the command below (it reads SLURM_ARRAY_TASK_ID)"
    how = f"{spec.ntasks} rank(s) on {spec.nodes} node(s), started by {spec.launcher}" if spec.launcher else \
        "in this shell"
    lines = [f"# Written by scorch: {what}, {how}."]
    if spec.requeue:
        lines += [
            f"# SLURM sends USR1 {spec.signal_seconds} s before the time limit; the ranks then checkpoint at the next",
            f"# step boundary and exit {EXIT_PREEMPTED}, and the job requeues itself; --auto-resume continues from {LAST}.",
            f"# A stop by --max-time (exit {EXIT_PREEMPTED}) requeues too; scancel (TERM) makes them checkpoint and stop,",
            "# but the job is not requeued.",
        ]
    return lines


def _select(spec: JobSpec) -> list[str]:
    """``cmd=(...)``: the command, or the one of this array element."""
    if len(spec.commands) == 1:
        return [_argv(spec.commands[0])]
    return [
        'case "${SLURM_ARRAY_TASK_ID:-}" in',
        *(f"  {i}) {_argv(cmd)} ;;" for i, cmd in enumerate(spec.commands)),
        """  *) echo "scorch job: no run for array task '${SLURM_ARRAY_TASK_ID:-}'" >&2; exit 2 ;;""",
        "esac",
    ]


MPIRUN_KILL_TIMEOUT_S = 25  # below SLURM's default KillWait (30 s), which ends everything anyway


def _kill_timeout(spec: JobSpec) -> list[str]:
    """mpirun SIGKILLs its ranks 1 s after it passes a SIGTERM on (scancel sends it one too), which
    is too soon for a checkpoint of a second or more: the job gives them longer, unless its
    environment says."""
    if spec.launcher != "mpirun":
        return []
    return ["# mpirun kills its ranks 1 s after a TERM unless told: time for their stop checkpoint.",
            f'export OMPI_MCA_odls_base_sigkill_timeout="${{OMPI_MCA_odls_base_sigkill_timeout:-{MPIRUN_KILL_TIMEOUT_S}}}"']


def _launch(spec: JobSpec) -> str:
    if spec.launcher == "srun":
        # One failing rank ends the step (and the job) at once, not after a collective's timeout.
        cpus = [f"--cpus-per-task={spec.cpus_per_task}"] if spec.cpus_per_task else []
        return " ".join(["srun", "--kill-on-bad-exit=1", *cpus, '"${cmd[@]}"'])
    # mpirun ends the job itself when a rank exits non-zero.
    return " ".join([*([spec.launcher] if spec.launcher else []), '"${cmd[@]}"'])


_REQUEUE = f"""
# A signal reaches this shell only; the ranks get USR1 through the launcher, which forwards it.
# A stop with a checkpoint (exit {EXIT_PREEMPTED}: the time-limit warning USR1, or --max-time) requeues;
# after TERM (scancel) the job stops without requeueing.
requeue=1
on_signal() {{
  echo "scorch job: got SIG$1; the ranks checkpoint and stop" >&2
  if [ "$1" = TERM ]; then requeue=0; fi
  kill -s USR1 "$child" 2>/dev/null
}}
trap 'on_signal USR1' USR1
trap 'on_signal TERM' TERM
LAUNCH &
child=$!
# wait returns early when a trapped signal arrives: wait until the launcher has ended, then take its code.
while kill -0 "$child" 2>/dev/null; do wait "$child"; done
wait "$child"
code=$?
if [ "$code" -eq {EXIT_PREEMPTED} ] && [ "$requeue" -eq 1 ]; then
  echo "scorch job: checkpoint written; requeueing job $SLURM_JOB_ID" >&2
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$code"
"""


def render(spec: JobSpec) -> str:
    """Text of the sbatch script for ``spec``. Pure: the same spec gives the same text.

    Every value was checked by :class:`JobSpec` (no control characters, SLURM formats) and is
    ``shlex``-quoted here, so spaces, quotes, ``$(...)``, ``;`` and ``%`` in names and paths reach
    SLURM and the command unchanged and run nothing.
    """
    lines = ["#!/bin/bash", *_flags(spec), "", *_about(spec), *spec.setup, "", *_select(spec), *_kill_timeout(spec)]
    if spec.requeue:
        return "\n".join(lines) + "\n" + _REQUEUE.replace("LAUNCH", _launch(spec))
    return "\n".join([*lines, "exec " + _launch(spec), ""])
