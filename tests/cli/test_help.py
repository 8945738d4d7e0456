"""Every command's --help (and every scorch-gen subcommand's): no internal placeholder, real defaults."""
from __future__ import annotations

import re

import pytest

from scorch.cli import check, gen, init, report, sweep, test, train
from tests.helpers import scorch_train

HELPS = {
    "scorch-train": (train, []), "scorch-test": (test, []),
    "scorch-sweep": (sweep, []), "scorch-check": (check, []), "scorch-init": (init, []),
    "scorch-report": (report, []), "scorch-gen": (gen, []), "scorch-gen generate": (gen, ["generate"]),
    "scorch-gen list": (gen, ["list"]), "scorch-gen move": (gen, ["move"]), "scorch-gen need": (gen, ["need"]),
}
# What an internal value looks like when it leaks into a help text.
PLACEHOLDERS = re.compile(r"object at 0x|_MISSING_TYPE|<(function|class|bound method) |\(default: (None|False|\[\]|\{\}|)\)|%\(|\bNone\b")


def help_text(module, words: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        module.main([*words, "--help"])
    assert exit_.value.code == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return " ".join(captured.out.split())  # argparse wraps lines; compare words


@pytest.mark.parametrize("name", list(HELPS))
def test_help_has_no_internal_placeholder(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module, words = HELPS[name]
    text = help_text(module, words, capsys)
    assert text.startswith(f"usage: {name}")
    assert not PLACEHOLDERS.search(text), PLACEHOLDERS.search(text)


def test_train_help_shows_the_real_defaults_and_no_default_for_the_files(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(train, [], capsys)
    for shown in ("--epochs EPOCHS epochs to train in total (a resume continues up to this) (default: 10)",
                  "--lr LR learning rate (default: 0.001)", "--monitor MONITOR metric for best.pt and early stopping, "
                  "e.g. valid/accuracy (default: valid/main when the model has a metric main, else valid/loss)",
                  "--run-root RUN_ROOT directory holding run directories "
                  "(default: runs)", "--dist-timeout DIST_TIMEOUT seconds a collective may wait for the other ranks "
                  "(default: 1800.0)"):
        assert shown in text, shown
    assert "--model MODEL MODEL_FILE defining Network and Socket --dataset" in text
    assert "--no-progress no progress bar --debug" in text  # flags: no default shown


def test_the_console_script_help_has_no_placeholder() -> None:
    out = scorch_train(["--help"])
    assert out.returncode == 0 and out.stderr == ""
    assert not PLACEHOLDERS.search(" ".join(out.stdout.split()))


# Every console script of pyproject.toml but scorch-torchrun (its --help is torchrun's parser, in torch)
# and scorch-mpirun (mpirun's own --help).
ENTRY_POINTS = ["scorch._start:train", "scorch.cli.gen:console_main", "scorch.cli.check:console_main",
                "scorch.cli.init:console_main", "scorch.cli.report:console_main", "scorch.cli.sweep:console_main",
                "scorch.cli.test:console_main", "scorch.cli.export:console_main"]
HELP_WITHOUT_TORCH = """
import importlib, sys
module, function = sys.argv[1].split(":")
sys.argv = [module, "--help"]
try:
    getattr(importlib.import_module(module), function)()
except SystemExit as exc:
    assert exc.code == 0, exc.code
heavy = sorted(m for m in ("torch", "tensorboardX", "numpy") if m in sys.modules and not (module.endswith(".gen") and m == "numpy"))
sys.stderr.write("imported: " + ",".join(heavy) + "\\n")
"""


def test_every_console_script_answers_help_without_importing_torch() -> None:
    """--help takes a tenth of a second, not the five seconds of importing torch on a busy machine."""
    import subprocess
    import sys

    for entry in ENTRY_POINTS:
        out = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH, entry], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, (entry, out.stderr)
        assert out.stdout.startswith("usage: scorch-"), (entry, out.stdout[:200])
        assert out.stderr.splitlines()[-1] == "imported: ", (entry, out.stderr)
