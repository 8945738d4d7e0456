"""The one local pool, with real child processes: exit codes, parallelism, logs, the time limit
(SIGTERM, then SIGKILL after the grace), and stop signals forwarded as SIGUSR1."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scorch.jobs import LocalJob, run_local


def py(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def job(tmp_path: Path, name: str, code: str) -> LocalJob:
    return LocalJob(name, py(code), tmp_path / f"{name}.log")


def test_exit_codes_in_order_and_output_appended_to_each_log(tmp_path):
    jobs = [job(tmp_path, "ok", "print('hello')"), job(tmp_path, "bad", "import sys; print('oops'); sys.exit(7)"),
            job(tmp_path, "err", "raise SystemExit('to stderr')")]
    result = run_local(jobs, max_parallel=2)
    assert result.codes == (0, 7, 1) and result.failed() == [1, 2] and result.stopped_by is None
    assert (tmp_path / "ok.log").read_text() == "hello\n" and "to stderr" in (tmp_path / "err.log").read_text()
    assert run_local(jobs[:1], max_parallel=1).codes == (0,)
    assert (tmp_path / "ok.log").read_text() == "hello\nhello\n"  # appended, like a requeued job's log


def test_at_most_max_parallel_at_once(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    code = ("import os, sys, time; d = sys.argv[1]; open(os.path.join(d, f'start-{time.monotonic()}'), 'w');"
            "time.sleep(0.4); open(os.path.join(d, f'end-{time.monotonic()}'), 'w')")
    jobs = [LocalJob(f"j{i}", (*py(code), str(marks)), tmp_path / f"j{i}.log") for i in range(5)]
    assert run_local(jobs, max_parallel=2).codes == (0,) * 5
    events = sorted((float(p.name.split("-", 1)[1]), 1 if p.name.startswith("start") else -1) for p in marks.iterdir())
    running, most = 0, 0
    for _, step in events:
        running += step
        most = max(most, running)
    assert most == 2


def test_max_parallel_below_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="max_parallel"):
        run_local([job(tmp_path, "a", "pass")], max_parallel=0)


def test_local_jobs_past_the_time_limit_are_killed(tmp_path):
    jobs = [LocalJob("sleeper", py("import time; time.sleep(60)"), tmp_path / "a.log"),
            LocalJob("quick", py("pass"), tmp_path / "b.log")]
    result = run_local(jobs, max_parallel=2, time_limit_s=0.5)
    assert result.codes[0] < 0 and result.codes[1] == 0
    assert result.codes[0] == -signal.SIGTERM and result.timed_out == {0}


def test_time_limit_sends_sigterm_then_sigkill_after_the_grace(tmp_path):
    saves = ("import signal, sys, time\n"
             "def stop(*a):\n    print('saving', flush=True); sys.exit(143)\n"
             "signal.signal(signal.SIGTERM, stop)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    ignores = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n"
    start = time.monotonic()
    result = run_local([job(tmp_path, "saves", saves), job(tmp_path, "ignores", ignores)], max_parallel=2,
                       time_limit_s=1.0, kill_grace_s=1.0)
    assert result.codes == (143, -signal.SIGKILL) and result.timed_out == {0, 1}
    assert (tmp_path / "saves.log").read_text() == "ready\nsaving\n"
    assert time.monotonic() - start < 10


def _signal_when_started(paths: list[Path], signum: int) -> threading.Thread:
    """Send ``signum`` to this process once every path exists (the pool's handler is in place by then)."""
    def go() -> None:
        deadline = time.monotonic() + 60
        while not all(p.exists() for p in paths) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_reaches_the_running_jobs_as_usr1_and_starts_no_new_one(tmp_path, signum):
    child = ("import pathlib, signal, sys, time\n"
             "def stop(signum, frame):\n"
             "    print('got', signal.Signals(signum).name, flush=True); sys.exit(3)\n"
             "for s in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):\n    signal.signal(s, stop)\n"
             "pathlib.Path(sys.argv[1]).touch()\ntime.sleep(60)\n")
    started = [tmp_path / f"started-{i}" for i in range(3)]
    jobs = [LocalJob(f"r{i}", (*py(child), str(started[i])), tmp_path / f"r{i}.log") for i in range(3)]
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    thread = _signal_when_started(started[:2], signum)
    t0 = time.monotonic()
    result = run_local(jobs, max_parallel=2)
    thread.join()
    assert result.codes == (3, 3, None) and result.stopped_by == signal.Signals(signum).name
    assert result.failed(ok=(0, 3)) == []
    for i in range(2):
        assert (tmp_path / f"r{i}.log").read_text() == "got SIGUSR1\n"  # forwarded as USR1, whatever came
    assert not (tmp_path / "r2.log").exists() and not started[2].exists()
    assert time.monotonic() - t0 < 30
    assert {s: signal.getsignal(s) for s in before} == before  # the pool's handlers are gone


def test_children_run_in_their_own_session(tmp_path):
    code = "import os; print(os.getsid(0) == os.getpid())"
    assert run_local([job(tmp_path, "s", code)], max_parallel=1).codes == (0,)
    assert (tmp_path / "s.log").read_text() == "True\n"


def test_a_pool_killed_outright_sends_its_jobs_the_parent_death_signal(tmp_path):
    """SIGKILL to the process running the pool: its job gets ``parent_death_signal`` (SIGTERM) from the
    kernel, with nobody left to forward it."""
    child = ("import pathlib, signal, sys, time\n"
             "def stop(signum, frame):\n"
             "    print('got', signal.Signals(signum).name, flush=True); sys.exit(3)\n"
             "signal.signal(signal.SIGTERM, stop)\n"
             "pathlib.Path(sys.argv[1]).touch()\ntime.sleep(60)\n")
    started = tmp_path / "started"
    pool = ("import signal, sys\nfrom pathlib import Path\nfrom scorch.jobs import LocalJob, run_local\n"
            f"run_local([LocalJob('j', (sys.executable, '-c', {child!r}, {str(started)!r}), Path({str(tmp_path / 'j.log')!r}))],"
            " max_parallel=1, parent_death_signal=signal.SIGTERM)\n")
    proc = subprocess.Popen(py(pool), env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert started.exists(), "the job did not start"
        proc.kill()
        assert proc.wait(timeout=60) == -signal.SIGKILL
        while (tmp_path / "j.log").read_text() == "" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (tmp_path / "j.log").read_text() == "got SIGTERM\n"
    finally:
        proc.kill()
