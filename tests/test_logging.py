import io
import logging
import sys

from scorch import _logging


def test_console_log_follows_the_current_stderr(monkeypatch):
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    with _logging.configured(0, False):
        first.close()  # as a test harness closes its capture
        now = io.StringIO()
        monkeypatch.setattr(sys, "stderr", now)
        logging.getLogger("scorch.anything").info("hello")
    assert now.getvalue() == "scorch: hello\n"


def test_other_ranks_log_errors_only(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    with _logging.configured(1, False):
        logging.getLogger("scorch.x").info("chatter")
        logging.getLogger("scorch.x").error("broken")
    assert out.getvalue() == "scorch[rank 1]: broken\n"


def test_a_command_leaves_the_logger_as_it_found_it():
    logger = logging.getLogger("scorch")
    before = (logger.level, logger.propagate, list(logger.handlers))
    with _logging.configured(0, True):
        assert logger.level == logging.DEBUG
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_console_level(monkeypatch):
    monkeypatch.delenv("SCORCH_LOG_LEVEL", raising=False)
    assert [_logging.console_level(False), _logging.console_level(True)] == ["INFO", "DEBUG"]
    # a command counting -v (scorch-gen): quiet by default
    assert [_logging.console_level(False, v) for v in (0, 1, 2, 3)] == ["WARNING", "INFO", "DEBUG", "DEBUG"]
    assert _logging.console_level(True, 0) == "DEBUG"
    monkeypatch.setenv("SCORCH_LOG_LEVEL", "error")
    assert _logging.console_level(True, 2) == "ERROR"


def test_quiet_loggers_say_warnings_only_for_the_command(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    build = logging.getLogger("scorch.training.build")
    before = build.level
    with _logging.configured(0, False, quiet=("scorch.training.build",)):
        build.info("speaks of scorch-train's flags")
        build.warning("worth saying")
        logging.getLogger("scorch.check").info("checked")
    assert out.getvalue() == "scorch: worth saying\nscorch: checked\n"
    assert build.level == before
    with _logging.configured(0, True, quiet=("scorch.training.build",)):  # --debug shows everything
        build.info("now shown")
    assert out.getvalue().endswith("scorch: now shown\n")


def test_other_ranks_show_no_python_warnings(monkeypatch):
    import warnings
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    with _logging.configured(1, False):
        warnings.warn("torch says: too many workers", UserWarning, stacklevel=1)
    assert out.getvalue() == ""


def test_one_process_states_its_threads_and_amp_in_the_start_line(tmp_path, monkeypatch, capsys):
    import torch

    from scorch.cli.train import main
    from tests.helpers import base_args
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert main(base_args(tmp_path, "r", "--epochs", "1", "--amp", "bf16")) == 0
    start = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("scorch: training "))
    n = torch.get_num_threads()
    assert f"amp bf16, {n} CPU thread{'s' if n != 1 else ''} (torch's default; OMP_NUM_THREADS sets it)" in start, start
