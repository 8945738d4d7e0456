"""``scorch-report RUN_DIR...``: a table of each run's settings and metrics, and a PNG of the curves."""
from __future__ import annotations

import argparse

from ..experiments import report
from ..rundir.layout import HISTORY
from ._runner import Command, Parser


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="scorch-report",
        description="Print the settings that differ between runs with each run's best (by its --monitor) and final "
        f"metrics, and plot the training curves from {HISTORY}, one panel per metric.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories written by scorch-train, or sweep "
                   "directories (scorch-sweep): every run of the sweep")
    p.add_argument("--out", default="report.png", help="where to write the PNG of the curves: a new .png file, or one "
                   "scorch-report wrote (no other file is replaced)")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks on errors")
    return p


def run(ns: argparse.Namespace) -> int:
    """0 written, 2 bad input."""
    report.check_out(ns.out)  # before reading anything: a bad --out is one line, whatever the runs
    runs = [report.load_run(path) for path in report.expand(ns.runs)]
    panels = report.plot(runs, ns.out)
    print(report.format_table(report.table(runs)))
    print(f"\nmetric columns are final values; best is by each run's monitor\nscorch-report: wrote {ns.out} ({', '.join(panels)})")
    return 0


COMMAND = Command("scorch-report", build_parser, run)
main, console_main = COMMAND.main, COMMAND.console_main


if __name__ == "__main__":
    console_main()
