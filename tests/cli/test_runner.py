"""The one command runner: how each way a command can end reaches the user (one line, an exit code)."""
from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from scorch import _start, errors
from scorch.cli import _runner, check, gen, init, report, sweep, train
from scorch.cli._runner import Command, Parser
from scorch.gen import errors as gen_errors
from tests.helpers import BIN, DATASET, MODEL, REPO, env

COMMANDS = {"scorch-train": train, "scorch-sweep": sweep, "scorch-gen": gen, "scorch-check": check, "scorch-init": init,
            "scorch-report": report}


def command(body: Callable[[], object], *, verbose: bool = False) -> Command:
    """A command named 'demo' whose run calls ``body``."""

    def build() -> argparse.ArgumentParser:
        p = Parser(prog="demo")
        p.add_argument("--n", type=int, default=0)
        p.add_argument("--debug", action="store_true")
        if verbose:
            p.add_argument("-v", "--verbose", action="count", default=0)
        return p

    def run(ns: argparse.Namespace) -> int:
        body()
        return 0

    return Command("demo", build, run)


def raiser(exc: BaseException) -> Callable[[], object]:
    def body() -> None:
        raise exc
    return body


def test_every_command_is_built_on_the_runner() -> None:
    for prog, module in COMMANDS.items():
        assert isinstance(module.COMMAND, Command) and module.COMMAND.prog == prog
        assert module.COMMAND.build_parser().prog == prog
    # the console scripts installed are these modules' console_main (scorch-train's through
    # scorch._start, which records stop signals before the imports)
    for prog, module in COMMANDS.items():
        script = (BIN / prog).read_text()
        if prog == "scorch-train":
            assert "from scorch._start import train" in script, prog
            assert "from .cli.train import console_main" in Path(_start.__file__).read_text()
        else:
            assert f"from {module.__name__} import console_main" in script, prog


@pytest.mark.parametrize("exc, code, line", [
    (errors.ScorchError("--lr: expected a finite number > 0, got nan"), 2, "demo: error: --lr: expected a finite number > 0, got nan"),
    (errors.TrainingError("the loss is nan at epoch 2, step 5"), 2, "demo: error: the loss is nan at epoch 2, step 5"),
    (gen_errors.GenError("no dataset 'x'"), 2, "demo: error: no dataset 'x'"),
    (gen_errors.NotEnoughSamples("only 3", 3), 2, "demo: error: only 3"),
    (errors.DistributedError("rank 1 never joined"), 1, "demo: error: rank 1 never joined"),
    (gen_errors.JobsFailed("2 of 2 local jobs failed"), 1, "demo: error: 2 of 2 local jobs failed"),
    (gen_errors.MoveAborted("rolled back"), 1, "demo: error: rolled back"),
    (errors.RankFailed("rank 1 (exit code 7) failed", 7), 7, "demo: error: rank 1 (exit code 7) failed"),
    (errors.Preempted("stopped by SIGTERM at epoch 2; continue with --resume"), 3,
     "demo: stopped by SIGTERM at epoch 2; continue with --resume"),
    (ValueError("bad\nsecond line"), 1, "demo: failed: ValueError: bad (rerun with --debug for the traceback)"),
    (errors.ScorchError("name 'a\nb' is odd"), 2, "demo: error: name 'a\\nb' is odd"),
    (BrokenPipeError(32, "Broken pipe"), 1, "demo: failed: BrokenPipeError: [Errno 32] Broken pipe (rerun with --debug for the "
     "traceback)"),  # not our stdout: a failure like any other
    (KeyboardInterrupt(), 130, "demo: interrupted"),
])
def test_what_ended_the_command_is_one_line_and_its_exit_code(exc, code, line, capsys) -> None:
    assert command(raiser(exc)).main([]) == code
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [line] and captured.out == ""


def test_every_error_class_is_an_error_with_its_exit_code() -> None:
    assert issubclass(errors.ScorchError, errors.Error) and errors.ScorchError.exit_code == 2
    assert issubclass(gen_errors.GenError, errors.ScorchError)
    for cls in (errors.DistributedError, errors.RankFailed, gen_errors.JobsFailed, gen_errors.MoveAborted):
        assert issubclass(cls, errors.Failure) and not issubclass(cls, errors.ScorchError), cls
    assert issubclass(errors.Preempted, errors.Stopped) and errors.Preempted.exit_code == errors.EXIT_PREEMPTED == 3


def test_debug_shows_the_traceback_then_the_line(capsys) -> None:
    assert command(raiser(ValueError("deep inside"))).main(["--debug"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "raise exc" in err
    assert err.splitlines()[-1] == "demo: failed: ValueError: deep inside"


def test_bad_usage_is_one_line_naming_the_help(capsys) -> None:
    assert command(lambda: None).main(["--n", "many"]) == 2
    assert capsys.readouterr().err == "demo: error: argument --n: invalid int value: 'many' (see demo --help)\n"


def test_help_exits_0_as_argparse_does(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        command(lambda: None).main(["--help"])
    assert exit_.value.code == 0 and "usage: demo" in capsys.readouterr().out


def test_console_logging_lasts_for_the_command_and_follows_the_verbosity(capsys) -> None:
    def body() -> None:
        logging.getLogger("scorch.demo").info("progress")
        logging.getLogger("scorch.demo").warning("careful")

    loud, quiet = command(body), command(body, verbose=True)
    handlers = list(logging.getLogger("scorch").handlers)
    assert loud.main([]) == 0
    assert capsys.readouterr().err == "scorch: progress\nscorch: careful\n"
    assert quiet.main([]) == 0  # a command counting -v (scorch-gen) says only warnings by default
    assert capsys.readouterr().err == "scorch: careful\n"
    assert quiet.main(["-v"]) == 0
    assert capsys.readouterr().err == "scorch: progress\nscorch: careful\n"
    assert logging.getLogger("scorch").handlers == handlers  # nothing left behind


def test_scorch_check_piped_into_head_leaves_quietly(tmp_path) -> None:
    """`scorch-check ... | head -2`: the reader goes after two lines; no BrokenPipeError traceback."""
    proc = subprocess.Popen([str(BIN / "scorch-check"), "--model", MODEL, "--dataset", DATASET], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**env(), "OMP_NUM_THREADS": "1"}, cwd=tmp_path)
    assert proc.stdout is not None and proc.stderr is not None
    first = [proc.stdout.readline(), proc.stdout.readline()]
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == errors.EXIT_BROKEN_PIPE, err
    assert [line.split()[:2] for line in first] == [[b"PASS", b"dataset.index"], [b"PASS", b"dataset.mode.train"]]
    assert err == ""


def test_one_line_escapes_line_breaks() -> None:
    assert _runner.one_line(" a\nb\r\n") == "a\\nb"


def test_scorch_gen_is_quiet_unless_v(tmp_path, capsys) -> None:
    shutil.copy(REPO / "examples" / "gen" / "datasets.py", tmp_path / "datasets.py")
    args = ["generate", "noisy_sine", "-n", "2", "--jobs", "5", "--local", "--time", "1", "--dir", str(tmp_path)]
    assert gen.main(args) == 0
    assert capsys.readouterr().err == ""
    assert gen.main([*args, "-v"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "scorch: only 2 samples: using 2 jobs instead of 5" and all(e.startswith("scorch: ") for e in err)
