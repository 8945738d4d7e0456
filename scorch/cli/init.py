"""``scorch-init DIR [--template NAME]``: write a commented, working ``model.py`` and ``dataset.py``
to start from, one of :data:`TEMPLATES` (``--template list`` lists them).

The templates live in the package (``scorch/templates/NAME/``) so that they install with scorch.
Existing files are left alone unless ``--force``; then nothing is written at all.
"""
from __future__ import annotations

import argparse
import shlex
from importlib import resources
from pathlib import Path

from .._atomic import write_text
from ..config import check_path
from ..errors import ScorchError
from ._runner import Command, DefaultsFormatter, Parser

FILES = ("model.py", "dataset.py")
DEFAULT = "mlp"
# name -> what it shows; each is a directory scorch/templates/NAME/ with FILES, trained in tests/check/test_init.py.
TEMPLATES = {
    "mlp": "an MLP classifier on a generated 4-class problem, with split_metrics (macro F1) and visualize",
    "cnn": "a CNN with BatchNorm on scikit-learn's 8x8 digits, with shifts and noise as augmentation",
    "lm": "a small transformer language model over the characters of a generated text",
    "finetune": "a frozen backbone (BatchNorm in eval mode) and a trainable head, with how to load pretrained weights",
}


def listing() -> str:
    width = max(map(len, TEMPLATES))
    return "\n".join(f"  {name.ljust(width)}  {text}" for name, text in TEMPLATES.items())


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="scorch-init",
        description="Write a minimal, commented model.py and dataset.py into DIR (created if missing); "
        "they pass scorch-check and train with scorch-train as they are, on data that needs no download.",
        epilog="templates:\n" + listing(),
        formatter_class=InitFormatter,
    )
    p.add_argument("dir", metavar="DIR", nargs="?", help="directory to write model.py and dataset.py into")
    p.add_argument("--template", default=DEFAULT, metavar="NAME",
                   help=f"which starting point: {', '.join(TEMPLATES)} (below); list: print them and write nothing")
    p.add_argument("--force", action="store_true", help="overwrite model.py and dataset.py if they exist")
    p.add_argument("--debug", action="store_true", help="tracebacks on errors")
    return p


class InitFormatter(DefaultsFormatter, argparse.RawDescriptionHelpFormatter):
    """The templates' list below the flags, one per line as written."""


def template(name: str, kind: str = DEFAULT) -> str:
    """The text of file ``name`` of template ``kind``."""
    return resources.files("scorch").joinpath("templates", kind, name).read_text(encoding="utf-8")


def write_templates(directory: str | Path, force: bool = False, kind: str = DEFAULT) -> list[Path]:
    """Write template ``kind`` into ``directory``; refuse (ScorchError) before writing if a file exists."""
    if kind not in TEMPLATES:
        raise ScorchError(f"--template {kind!r}: no such template; expected one of {', '.join(TEMPLATES)} (or list)")
    check_path(str(directory), "DIR")  # '' would write into the current directory
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ScorchError(f"DIR: {directory} exists and is not a directory")
    targets = [directory / name for name in FILES]
    taken = next((t for t in targets if t.is_dir()), None)
    if taken is not None:
        raise ScorchError(f"DIR: {taken} is a directory; expected a file scorch-init may write (move it away)")
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise ScorchError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; give --force to overwrite")
    texts = [template(name, kind) for name in FILES]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for target, text in zip(targets, texts):
            write_text(target, text)
    except OSError as exc:
        raise ScorchError(f"DIR: cannot write into {directory}: {exc.strerror or exc}") from exc
    return targets


def run(ns: argparse.Namespace) -> int:
    """0 written (or listed), 2 refused or bad input."""
    if ns.template == "list":
        print(f"scorch-init templates (--template NAME; default {DEFAULT}):\n{listing()}")
        return 0
    if ns.dir is None:
        raise ScorchError("the following arguments are required: DIR (where to write model.py and dataset.py; "
                          "see scorch-init --help)")
    model, dataset = write_templates(ns.dir, ns.force, ns.template)
    files = f"--model {shlex.quote(str(model))} --dataset {shlex.quote(str(dataset))}"
    print(f"scorch-init: wrote {model} and {dataset} (template {ns.template})")
    print(f"  check: scorch-check {files}")
    print(f"  train: scorch-train {files} --epochs 5")
    return 0


COMMAND = Command("scorch-init", build_parser, run)
main, console_main = COMMAND.main, COMMAND.console_main


if __name__ == "__main__":
    console_main()
