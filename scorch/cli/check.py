"""``scorch-check``: one line per check of a model file and a dataset file (see docs/checks.md).

Exit codes: 0 every check passed, 1 a check failed, 2 unusable input (a file missing or not importing, a bad flag).
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .._check_options import CheckOptions
from ._runner import Command, Parser

if TYPE_CHECKING:
    from ..check import CheckResult


def build_parser() -> argparse.ArgumentParser:
    d = CheckOptions.__dataclass_fields__
    p = Parser(
        prog="scorch-check",
        description="Check MODEL_FILE and DATASET_FILE against scorch's contract before training: the dataset's items "
        "and batches, the model's outputs, loss, metrics and gradients, an overfit test and a checkpoint round trip.",
    )
    p.add_argument("--model", required=True, help="MODEL_FILE defining Network and Socket")
    p.add_argument("--dataset", required=True, help="DATASET_FILE defining DataSet (and optionally DataSetIndex)")
    p.add_argument("--dataset-path", help="passed to DataSetIndex(path), or to DataSet when there is no DataSetIndex")
    for name, kind, text in (
        ("batch_size", int, "size of the one batch the model checks and the overfit test use"),
        ("sample", int, "items per mode compared by dataset.consistency"),
        ("steps", int, "optimizer steps of the overfit test"),
        ("lr", float, "Adam's learning rate (unless Socket.optimizer is defined)"),
        ("min_drop", float, "fraction by which the overfit test wants the loss to fall"),
        ("seed", int, "seed for the weights and every random draw"),
    ):
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=d[name].default, help=text)
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks on errors")
    return p


def options_from(ns: argparse.Namespace) -> CheckOptions:
    return CheckOptions(
        batch_size=ns.batch_size, sample=ns.sample, steps=ns.steps, lr=ns.lr, min_drop=ns.min_drop, seed=ns.seed
    )


def _print_result(result: CheckResult) -> None:
    from .. import check

    print(check.format_result(result), flush=True)


def run(ns: argparse.Namespace) -> int:
    """0 every check passed, 1 a check failed, 2 bad input."""
    from .. import check  # imports torch, which --help does without

    session = check.open_files(ns.model, ns.dataset, ns.dataset_path, options_from(ns), on_result=_print_result)
    results = check.run_all(session)
    print(f"scorch-check: {check.summary(results)}")
    return check.exit_code(results)


# scorch.training.build's INFO line about Socket.optimizer speaks of scorch-train's flags.
COMMAND = Command("scorch-check", build_parser, run, quiet=("scorch.training.build",))
main, console_main = COMMAND.main, COMMAND.console_main


if __name__ == "__main__":
    console_main()
