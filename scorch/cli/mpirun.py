"""``scorch-mpirun``: Open MPI's mpirun, stopped without losing the stop checkpoint.

mpirun passes a SIGTERM or SIGINT (``scancel``, Ctrl-C) on to its ranks as SIGTERM and SIGKILLs
them ``odls_base_sigkill_timeout`` seconds later (1 by default): a checkpoint that takes longer is
lost, and mpirun exits 1 after one. SIGUSR1 it passes on and kills nothing, and it then exits with
the ranks' code (3). ``scorch-mpirun`` runs mpirun with the same arguments in a session of its own
(so a terminal's Ctrl-C reaches this process only) and turns the first SIGINT, SIGTERM or SIGHUP
into SIGUSR1 to mpirun; a second one is passed on as it is (mpirun's own abort). When this
process dies outright, mpirun gets SIGUSR1 from the kernel (``PR_SET_PDEATHSIG``). Its exit code
is mpirun's (a signal's: 128 + its number).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from types import FrameType

from .._parent_death import parent_death_signal
from ..errors import EXIT_BAD_INPUT

PASSED_AS_USR1 = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    mpirun = os.environ.get("SCORCH_MPIRUN") or shutil.which("mpirun")
    if mpirun is None:
        print("scorch-mpirun: error: no mpirun on PATH (install Open MPI, or set SCORCH_MPIRUN)", file=sys.stderr)
        return EXIT_BAD_INPUT
    stops = 0
    hook = parent_death_signal(signal.SIGUSR1, parent=os.getpid())
    proc = subprocess.Popen([mpirun, *argv], start_new_session=True, preexec_fn=hook)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stops
        if signum != signal.SIGUSR1:
            stops += 1
        name = signal.Signals(signum).name
        passed = signal.SIGUSR1 if signum == signal.SIGUSR1 or stops == 1 else signum
        if passed == signal.SIGUSR1 and signum != signal.SIGUSR1:
            os.write(2, f"scorch-mpirun: got {name}: passing SIGUSR1 to mpirun, the ranks checkpoint and stop "
                        f"(again to abort)\n".encode())
        try:
            os.kill(proc.pid, passed)
        except ProcessLookupError:
            pass

    for sig in (*PASSED_AS_USR1, signal.SIGUSR1):
        signal.signal(sig, on_signal)
    code = proc.wait()  # retried after each handled signal (PEP 475)
    return 128 - code if code < 0 else code


def console_main() -> None:
    sys.exit(main())
