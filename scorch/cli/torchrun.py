"""``scorch-torchrun``: torchrun, with the exit code of a stop.

torchrun exits 1 after any signal it passes on (it raises its own ``SignalException``) and after
ranks that all exited 3 (a ``ChildFailedError``), so a job script cannot tell "stopped after
saving, requeue me" from a failure by its code. ``scorch-torchrun`` takes torchrun's flags
unchanged and runs it in-process, with two differences:

- ``--signals-to-handle`` also names SIGUSR1 (SLURM's warning before the time limit) unless the
  command line or ``TORCHELASTIC_SIGNALS_TO_HANDLE`` says; torchrun's default leaves it out, and
  SIGUSR1 then kills the agent at once.
- It exits **3** when every rank it started this attempt stopped after saving (each scorch-train
  rank notes its start and its stop in a directory the agent gives it, ``SCORCH_STOP_NOTES``), 1
  after any other ending torchrun calls a failure, 0 when torchrun succeeds.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..errors import EXIT_PREEMPTED
from ..launch.torchrun import STOP_NOTES

SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"


def stopped_after_saving(notes: Path) -> bool:
    names = {p.name for p in notes.iterdir()}
    started = {n.split("-", 1)[1] for n in names if n.startswith("started-")}
    stopped = {n.split("-", 1)[1] for n in names if n.startswith("stopped-")}
    return bool(started) and started == stopped


def _signals_given(argv: list[str]) -> bool:
    return "TORCHELASTIC_SIGNALS_TO_HANDLE" in os.environ or any(
        a.split("=", 1)[0] in ("--signals-to-handle", "--signals_to_handle") for a in argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = torchrun.parse_args(argv)
    if not _signals_given(argv):
        args.signals_to_handle = SIGNALS
    notes = Path(tempfile.mkdtemp(prefix="scorch-torchrun-"))
    os.environ[STOP_NOTES] = str(notes)  # the ranks inherit the agent's environment
    try:
        torchrun.run(args)
        return 0
    except ChildFailedError as exc:
        if stopped_after_saving(notes) and {f.exitcode for f in exc.failures.values()} == {EXIT_PREEMPTED}:
            return EXIT_PREEMPTED  # every rank stopped after saving (--max-time): the ranks said so
        print(exc.format_msg(), file=sys.stderr)
        return 1
    except SignalException as exc:
        if stopped_after_saving(notes):
            return EXIT_PREEMPTED
        print(f"scorch-torchrun: {exc}; not every rank stopped after saving", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(notes, ignore_errors=True)


def console_main() -> None:
    sys.exit(main())
