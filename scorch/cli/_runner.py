"""The one runner of every scorch command: parse, set up console logging, run, and turn whatever
ended the command into one line on stderr and an exit code (see :mod:`scorch.errors`).

    COMMAND = Command("scorch-report", build_parser, run)
    main, console_main = COMMAND.main, COMMAND.console_main

- an :class:`~scorch.errors.Error`: ``PROG: error: MESSAGE``, the class's exit code (2 bad input,
  1 failure, 3 stopped);
- any other exception: ``PROG: failed: Type: first line (rerun with --debug for the traceback)``, 1;
- KeyboardInterrupt: ``PROG: interrupted``, 130;
- stdout closed by its reader (``scorch-check ... | head -2``): nothing more, 141;
- SystemExit raised while the command ran (a user's file calling ``sys.exit``): a failure line, 1.

``--debug`` prints the traceback before the line.

With several ranks (scorch-train under a launcher) the job's error is printed once: an error every
rank raised (:attr:`~scorch.errors.Error.shown_by`: the command line is every rank's, and so are the
checks the ranks agree on before training) by the rank it names; any other by the first rank that
failed (``Command.shown``), while the ranks whose collectives broke with it leave quietly. Each line
is written with one ``write``, so lines of several processes never run into each other.
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
from ..errors import EXIT_BROKEN_PIPE, EXIT_FAILURE, EXIT_INTERRUPTED, Error, ScorchError, on_every_rank


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


def _as_is(exc: BaseException) -> BaseException | None:
    return exc


class UserExit(Error):
    """SystemExit raised while a command ran (not by argparse): user code called ``sys.exit``."""

    label = "failed"


@dataclass(frozen=True)
class Ending:
    """How a command ended: its exit code, the exception that ended it (None: it returned), and
    whether this process printed the error line (a rank of several leaves quietly when another
    rank prints the job's error)."""

    code: int
    error: BaseException | None = None
    shown: bool = False

    @property
    def agreed(self) -> bool:
        """Whether every rank of the job raised the error alike (and so leaves together)."""
        return isinstance(self.error, Error) and self.error.shown_by is not None


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
    # What this process shows of an error no other rank raised alike: the error, a clearer one, or
    # None when another rank of its job failed first and shows the job's error.
    shown: Callable[[BaseException], BaseException | None] = _as_is

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Run the command; returns its exit code. The process goes on (tests, notebooks)."""
        return self.end(argv).code

    def end(self, argv: Sequence[str] | None = None) -> Ending:
        """Run the command; how it ended (for a console script that ends several ranks together)."""
        args = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in args
        try:
            try:
                ns = self.parse(self.build_parser(), args)
            except Error as exc:
                on_every_rank(exc)  # every rank of a job has the same command line
                raise
            debug = debug or bool(getattr(ns, "debug", False))
            with _logging.configured(self.rank(), debug, getattr(ns, "verbose", None), self.quiet):
                try:
                    return Ending(self.run(ns))
                except SystemExit as exc:
                    raise UserExit(f"SystemExit({exc.code!r}) was raised while the command ran, not by scorch: "
                                   "does a model, dataset or generator file call sys.exit() or exit()?") from exc
        except BaseException as exc:  # every way a command ends is reported here
            return self._report(exc, debug)

    def console_main(self) -> NoReturn:
        """The console script."""
        sys.exit(self.main())

    def _report(self, exc: BaseException, debug: bool) -> Ending:
        if isinstance(exc, BrokenPipeError) and _stdout_closed():
            _discard_stdout()  # so that the interpreter's last flush does not complain either
            return Ending(EXIT_BROKEN_PIPE, exc)
        if not isinstance(exc, (Exception, KeyboardInterrupt)):
            raise exc  # SystemExit (--help), GeneratorExit: not ours to report
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C reaches every rank: rank 0 says it
            if self.rank() != 0:
                return Ending(EXIT_INTERRUPTED, exc)
            _say(f"{self._prefix()}: interrupted")
            return Ending(EXIT_INTERRUPTED, exc, shown=True)
        code = exc.exit_code if isinstance(exc, Error) else EXIT_FAILURE
        if isinstance(exc, Error) and exc.shown_by is not None:
            if exc.shown_by != self.rank():
                return Ending(code, exc)  # every rank raised it; rank shown_by prints it
            shown: BaseException = exc
        else:
            clearer = self.shown(exc)
            if clearer is None:
                return Ending(code, exc)  # another rank failed first and prints the job's error
            shown = clearer
        if debug:
            traceback.print_exc()
        if isinstance(shown, Error):
            label = f"{shown.label}: " if shown.label else ""
            _say(f"{self._prefix()}: {label}{one_line(str(shown))}")
        else:
            text = str(shown).strip()
            first = text.splitlines()[0] if text else ""
            hint = "" if debug else " (rerun with --debug for the traceback)"
            _say(f"{self._prefix()}: failed: {type(shown).__name__}: {one_line(first)}{hint}")
        return Ending(code, exc, shown=True)

    def _prefix(self) -> str:
        return self.prefix() if self.prefix else self.prog


def _say(line: str) -> None:
    """One line on stderr in one write, so that the lines of several ranks never run together."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


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
