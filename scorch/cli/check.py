"""``scorch-check``: one line per check of a model file and a dataset file (see docs/checks.md).

Exit codes: 0 every check passed, 1 a check failed, 2 unusable input (a file missing or not importing, a bad flag).
"""
from __future__ import annotations

import argparse
import logging
import sys
import traceback
from typing import Sequence

from .. import _logging, check
from ..errors import ScorchError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise ScorchError(message)


def build_parser() -> argparse.ArgumentParser:
    d = check.CheckOptions.__dataclass_fields__
    p = _Parser(
        prog="scorch-check",
        description="Check MODEL_FILE and DATASET_FILE against scorch's contract before training: the dataset's items "
        "and batches, the model's outputs, loss, metrics and gradients, an overfit test and a checkpoint round trip.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="MODEL_FILE defining Network and Socket")
    p.add_argument("--dataset", required=True, help="DATASET_FILE defining DataSet (and optionally DataSetIndex)")
    p.add_argument("--dataset-path", default=None, help="passed to DataSetIndex(path), or to DataSet when there is no DataSetIndex")
    p.add_argument("--batch-size", type=int, default=d["batch_size"].default, help="size of the one batch the model checks and the overfit test use")
    p.add_argument("--sample", type=int, default=d["sample"].default, help="items per mode compared by dataset.consistency")
    p.add_argument("--steps", type=int, default=d["steps"].default, help="optimizer steps of the overfit test")
    p.add_argument("--lr", type=float, default=d["lr"].default, help="Adam's learning rate (unless Socket.optimizer is defined)")
    p.add_argument("--min-drop", type=float, default=d["min_drop"].default, help="fraction by which the overfit test wants the loss to fall")
    p.add_argument("--seed", type=int, default=d["seed"].default, help="seed for the weights and every random draw")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks on errors")
    return p


def parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, check.CheckOptions]:
    ns = build_parser().parse_args(argv)
    options = check.CheckOptions(
        batch_size=ns.batch_size, sample=ns.sample, steps=ns.steps, lr=ns.lr, min_drop=ns.min_drop, seed=ns.seed
    )
    return ns, options


def _print_result(result: check.CheckResult) -> None:
    print(check.format_result(result), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """The command, with console logging set up for its length only."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with _logging.configured(0, "--debug" in argv):
        return _main(argv)


def _main(argv: Sequence[str] | None = None) -> int:
    """Run scorch-check; returns the exit code (0 all passed, 1 a check failed, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    build_log = logging.getLogger("scorch.build")
    level = build_log.level
    if not debug:  # its INFO line about Socket.optimizer speaks of scorch-train's flags
        build_log.setLevel(logging.WARNING)
    try:
        return _run(argv, debug)
    finally:
        build_log.setLevel(level)


def _run(argv: list[str], debug: bool) -> int:
    try:
        ns, options = parse(argv)
        session = check.open_files(ns.model, ns.dataset, ns.dataset_path, options, on_result=_print_result)
        results = check.run_all(session)
    except ScorchError as exc:
        if debug:
            traceback.print_exc()
        print(f"scorch-check: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("scorch-check: interrupted", file=sys.stderr)
        return 130
    code = check.exit_code(results)
    print(f"scorch-check: {check.summary(results)}")
    return code


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
