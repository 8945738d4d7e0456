"""The one runner of every scorch command: parse, set up console logging, run, and turn whatever
ended the command into one line on stderr and an exit code (see :mod:`scorch.errors`).

    COMMAND = Command("scorch-report", build_parser, run)
    main, console_main = COMMAND.main, COMMAND.console_main

- an :class:`~scorch.errors.Error`: ``PROG: error: MESSAGE``, the class's exit code (2 bad input,
  1 failure, 3 stopped);
- any other exception: ``PROG: failed: Type: first line (rerun with --debug for the traceback)``, 1;
- KeyboardInterrupt: ``PROG: interrupted``, 130;
- stdout closed by its reader (``scorch-check ... | head -2``): nothing more, 141.

``--debug`` prints the traceback before the line.
"""
from __future__ import annotations

import argparse
import os
import select
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from .. import _logging
from ..errors import EXIT_BROKEN_PIPE, EXIT_FAILURE, EXIT_INTERRUPTED, Error, ScorchError


class DefaultsFormatter(argparse.HelpFormatter):
    """Shows an option's default after its help when there is one worth showing: not None, empty or a
    flag's False, and not one the help states itself."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text, default = action.help or "", action.default
        empty = default is None or default is argparse.SUPPRESS or (isinstance(default, (str, list, tuple)) and not default)
        if empty or "(default" in text or action.nargs == 0 or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one :class:`ScorchError` line (exit 2) instead of usage text and
    an exit. (``--help`` still prints and raises SystemExit(0), as argparse does.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise ScorchError(f"{message} (see {self.prog} --help)")


def _parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Command:
    """One command: its name, its parser and what it does with the parsed arguments."""

    prog: str
    build_parser: Callable[[], argparse.ArgumentParser]
    run: Callable[[argparse.Namespace], int]  # turns the namespace into the command's typed config at once
    parse: Callable[[argparse.ArgumentParser, list[str]], argparse.Namespace] = _parse_args
    rank: Callable[[], int] = lambda: 0  # whose console this is (other ranks log errors only)
    prefix: Callable[[], str] | None = None  # names the process in error lines (default: prog)
    quiet: tuple[str, ...] = ()  # loggers that log warnings only, unless --debug

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Run the command; returns its exit code. The process goes on (tests, notebooks)."""
        args = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in args
        try:
            ns = self.parse(self.build_parser(), args)
            debug = debug or bool(getattr(ns, "debug", False))
            with _logging.configured(self.rank(), debug, getattr(ns, "verbose", None), self.quiet):
                return self.run(ns)
        except BaseException as exc:  # every way a command ends is reported here
            return self._report(exc, debug)

    def console_main(self) -> NoReturn:
        """The console script."""
        sys.exit(self.main())

    def _report(self, exc: BaseException, debug: bool) -> int:
        if isinstance(exc, BrokenPipeError) and _stdout_closed():
            _discard_stdout()  # so that the interpreter's last flush does not complain either
            return EXIT_BROKEN_PIPE
        if not isinstance(exc, (Exception, KeyboardInterrupt)):
            raise exc  # SystemExit (--help, or from user code), GeneratorExit: not ours to report
        prefix = self.prefix() if self.prefix else self.prog
        if isinstance(exc, KeyboardInterrupt):
            print(f"{prefix}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        if debug:
            traceback.print_exc()
        if isinstance(exc, Error):
            label = f"{exc.label}: " if exc.label else ""
            print(f"{prefix}: {label}{one_line(str(exc))}", file=sys.stderr)
            return exc.exit_code
        text = str(exc).strip()
        first = text.splitlines()[0] if text else ""
        hint = "" if debug else " (rerun with --debug for the traceback)"
        print(f"{prefix}: failed: {type(exc).__name__}: {one_line(first)}{hint}", file=sys.stderr)
        return EXIT_FAILURE


def one_line(text: str) -> str:
    """``text`` as one line: line breaks (a user's exception, a name with a newline) written as \\n."""
    return text.strip().replace("\r", "\\r").replace("\n", "\\n")


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (so the BrokenPipeError was about our output)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a test harness or a notebook
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(event & select.POLLERR for _, event in poller.poll(0))


def _discard_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
