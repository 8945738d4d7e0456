"""``scorch-report RUN_DIR...``: a table of each run's settings and metrics, and a PNG of the curves."""
from __future__ import annotations

import argparse
import sys
import traceback
from typing import Sequence

from .. import _logging, report
from ..errors import ScorchError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise ScorchError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="scorch-report",
        description="Print the settings that differ between runs with each run's best (by its --monitor) and final "
        "metrics, and plot the training curves from history.csv, one panel per metric.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories written by scorch-train")
    p.add_argument("--out", default="report.png", help="where to write the PNG of the curves")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks on errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The command, with console logging set up for its length only."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with _logging.configured(0, "--debug" in argv):
        return _main(argv)


def _main(argv: Sequence[str] | None = None) -> int:
    """Run scorch-report; returns the exit code (0 written, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        ns = build_parser().parse_args(argv)
        runs = [report.load_run(path) for path in ns.runs]
        panels = report.plot(runs, ns.out)
    except ScorchError as exc:
        if debug:
            traceback.print_exc()
        print(f"scorch-report: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(report.format_table(report.table(runs)))
    print(f"\nmetric columns are final values; best is by each run's monitor\nscorch-report: wrote {ns.out} ({', '.join(panels)})")
    return 0


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
