"""``scorch-init DIR``: write a commented, working ``model.py`` and ``dataset.py`` to start from.

The templates live in the package (``scorch/templates/``) so that they install with scorch.
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
from ._runner import Command, Parser

FILES = ("model.py", "dataset.py")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="scorch-init",
        description="Write a minimal, commented model.py and dataset.py into DIR (created if missing); "
        "they pass scorch-check and train with scorch-train as they are, on generated data.",
    )
    p.add_argument("dir", metavar="DIR", help="directory to write model.py and dataset.py into")
    p.add_argument("--force", action="store_true", help="overwrite model.py and dataset.py if they exist")
    p.add_argument("--debug", action="store_true", help="tracebacks on errors")
    return p


def template(name: str) -> str:
    return resources.files("scorch").joinpath("templates", name).read_text(encoding="utf-8")


def write_templates(directory: str | Path, force: bool = False) -> list[Path]:
    """Write the templates into ``directory``; refuse (ScorchError) before writing if one exists."""
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
    texts = [template(name) for name in FILES]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for target, text in zip(targets, texts):
            write_text(target, text)
    except OSError as exc:
        raise ScorchError(f"DIR: cannot write into {directory}: {exc.strerror or exc}") from exc
    return targets


def run(ns: argparse.Namespace) -> int:
    """0 written, 2 refused or bad input."""
    model, dataset = write_templates(ns.dir, ns.force)
    files = f"--model {shlex.quote(str(model))} --dataset {shlex.quote(str(dataset))}"
    print(f"scorch-init: wrote {model} and {dataset}")
    print(f"  check: scorch-check {files}")
    print(f"  train: scorch-train {files} --epochs 5")
    return 0


COMMAND = Command("scorch-init", build_parser, run)
main, console_main = COMMAND.main, COMMAND.console_main


if __name__ == "__main__":
    console_main()
