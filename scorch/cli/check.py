"""``scorch-check``: one line per check of a model file and a dataset file (see docs/checks.md).

Exit codes: 0 every check passed, 1 a check failed, 2 unusable input (a file missing or not importing, a bad flag).
"""
from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from .._check_options import CheckOptions
from ._runner import Command, Parser

if TYPE_CHECKING:
    from ..check import CheckResult
    from ..config import TrainConfig

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    d = CheckOptions.__dataclass_fields__
    p = Parser(
        prog="scorch-check",
        description="Check MODEL_FILE and DATASET_FILE against scorch's contract before training: the dataset's items "
        "and batches, the model's outputs, loss, metrics and gradients, an overfit test and a checkpoint round trip.",
    )
    p.add_argument("--model", help="MODEL_FILE defining Network and Socket (or 'model:' in --config)")
    p.add_argument("--dataset", help="DATASET_FILE defining DataSet, optionally DataSetIndex (or 'dataset:' in --config)")
    p.add_argument("--dataset-path", help="passed to DataSetIndex(path), or to DataSet when there is no DataSetIndex")
    p.add_argument("--config", help="scorch-train's YAML, JSON or TOML file of settings: the files, --dataset-path and "
                   "the parts' settings are used (the flags here win over it)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a part's setting as scorch-train takes it: model.NAME, socket.NAME, dataset.NAME, shared.NAME "
                   "(repeatable)")
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


def train_settings(ns: argparse.Namespace) -> TrainConfig:
    """The settings scorch-train would resolve from these flags, ``--config`` and ``--set`` (the
    same precedence, names and errors); the checks use the files, --dataset-path and the parts'
    settings. A ``--set`` of a training setting is said to have no effect here, in one line."""
    from ..contract import overrides

    flags = {k: getattr(ns, k) for k in ("model", "dataset", "dataset_path", "config") if getattr(ns, k) is not None}
    config = overrides.resolve(flags, [("--set", item) for item in ns.set])
    unused = [key for key, _ in map(overrides.parse_assignment, ns.set)
              if key.replace("-", "_").partition(".")[0] not in overrides.SETTINGS_PREFIXES
              and key.replace("-", "_") not in ("model", "dataset", "dataset_path")]
    if unused:
        log.warning("scorch-check: --set %s: a setting of training, not of these checks (their own flags: --batch-size, "
                    "--lr, --seed, --steps)", ", ".join(unused))
    return config


def _print_result(result: CheckResult) -> None:
    from .. import check

    print(check.format_result(result), flush=True)


def run(ns: argparse.Namespace) -> int:
    """0 every check passed, 1 a check failed, 2 bad input."""
    from .. import check  # imports torch, which --help does without

    config = train_settings(ns)
    session = check.open_files(config.model, config.dataset, config.dataset_path, options_from(ns),
                               on_result=_print_result, config=config)
    results = check.run_all(session)
    print(f"scorch-check: {check.summary(results)}")
    return check.exit_code(results)


# scorch.training.build's INFO line about Socket.optimizer speaks of scorch-train's flags.
COMMAND = Command("scorch-check", build_parser, run, quiet=("scorch.training.build",))
main, console_main = COMMAND.main, COMMAND.console_main


if __name__ == "__main__":
    console_main()
