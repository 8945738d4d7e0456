"""scorch-check's bad input: files it cannot use and flags out of range (exit 2). A file that loads
but breaks the contract is what scorch-check reports, check by check (exit 1): not here."""
from __future__ import annotations

import pytest

from scorch.cli.check import main
from tests.bad_input.harness import TMP, Case, params, run_in_process
from tests.bad_input.sources import GOOD_MODEL
from tests.helpers import DATASET, MODEL

FILES = ["--model", MODEL, "--dataset", DATASET]


def C(extra: list[str], *words: str) -> Case:
    return Case([*FILES, *extra], *words)


CASES = {
    "no --model": Case(["--dataset", DATASET], "--model is required (or 'model:' in --config)"),
    "no --dataset": Case(["--model", MODEL], "--dataset is required (or 'dataset:' in --config)"),
    "misspelt part setting": Case(["--model", MODEL, "--dataset", DATASET, "--set", "model.nope=1"],
                                  "--set model.nope: unknown setting of"),
    "missing dataset file": Case(["--model", MODEL, "--dataset", "/nope.py"], "--dataset", "file not found"),
    "missing model file": Case(["--model", f"{TMP}/nope.py", "--dataset", DATASET], "--model", "file not found"),
    "a model file that is a directory": Case(["--model", TMP, "--dataset", DATASET], "--model", "is a directory"),
    "a model file that does not import": Case(["--model", f"{TMP}/m.py", "--dataset", DATASET], "m.py", "SyntaxError",
                                              files={"m.py": "def (:\n"}),
    "a model file that calls sys.exit": Case(["--model", f"{TMP}/m.py", "--dataset", DATASET], "m.py", "sys.exit(0)",
                                             files={"m.py": "raise SystemExit(0)\n"}),
    "a dataset file that calls exit": Case(["--model", MODEL, "--dataset", f"{TMP}/d.py"], "d.py", "sys.exit(4)",
                                           files={"d.py": "exit(4)\n"}),
    "a model file without Network": Case(["--model", f"{TMP}/m.py", "--dataset", DATASET], "m.py", "no class Network",
                                         files={"m.py": GOOD_MODEL.replace("class Network", "class Net")}),
    "a dataset file without DataSet": Case(["--model", MODEL, "--dataset", f"{TMP}/d.py"], "d.py", "no class DataSet",
                                           files={"d.py": "x = 1\n"}),
    "--batch-size 0": C(["--batch-size", "0"], "--batch-size", ">= 1"),
    "--sample 0": C(["--sample", "0"], "--sample", ">= 1"),
    "--steps 0": C(["--steps", "0"], "--steps", ">= 1"),
    "--steps many": C(["--steps", "many"], "--steps", "invalid int value"),
    "--lr not finite": C(["--lr", "inf"], "--lr", "finite"),
    "--lr nan": C(["--lr", "nan"], "--lr", "finite"),
    "--lr 0": C(["--lr", "0"], "--lr", "> 0"),
    "--min-drop 0": C(["--min-drop", "0"], "--min-drop", "between 0 and 1"),
    "--min-drop 1": C(["--min-drop", "1"], "--min-drop", "between 0 and 1"),
    "--min-drop nan": C(["--min-drop", "nan"], "--min-drop", "between 0 and 1"),
    "--seed -1": C(["--seed", "-1"], "--seed", ">= 0"),
    "--seed 2**64": C(["--seed", str(2**64)], "--seed", "< 2**63"),
    "unknown flag": C(["--fast"], "unrecognized arguments: --fast"),
}


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys, monkeypatch):
    run_in_process(main, "scorch-check", case, tmp_path, capsys, monkeypatch)
