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
