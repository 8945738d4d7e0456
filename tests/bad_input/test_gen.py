"""scorch-gen's bad input, subcommand by subcommand: names, counts, parameters, SLURM options, the
generators file and the cache. Nothing is generated, moved or written."""
from __future__ import annotations

import shutil

import pytest

from scorch.cli.gen import main
from tests.bad_input.harness import TMP, Case, params, run_in_process
from tests.gen.conftest import TEST_DATASETS

DIR = ["--dir", TMP]
GEN = ["generate", "noisy_sine", "-n", "10", *DIR]
HAVE = {"datasets.py": TEST_DATASETS}  # every case gets the cache of 10 generated samples (see cache)


def G(args: list[str], *words: str, files: dict[str, str] | None = None) -> Case:
    return Case(args, *words, files=files)


CASES = {
    # ---- generate ------------------------------------------------------------------------------
    "gen: unknown dataset": G(["generate", "nothing", "-n", "10", "--local", *DIR], "no dataset 'nothing'", "noisy_sine"),
    "gen: unknown parameter": G([*GEN, "--local", "--params", "{'nope': 1}"], "unknown parameter", "nope",
                                "valid: left, right, std_dev"),
    "gen: params not a literal": G([*GEN, "--local", "--params", "{'left': "], "--params", "not a Python literal dict"),
    "gen: params as code": G([*GEN, "--local", "--params", "__import__('os').system('touch pwned')"], "--params"),
    "gen: params a list": G([*GEN, "--local", "--params", "[1, 2]"], "--params"),
    "gen: a parameter of the wrong type": G([*GEN, "--local", "--params", "{'left': 'far'}"], "parameter 'left'",
                                            "expected float"),
    "gen: -n 0": G(["generate", "noisy_sine", "-n", "0", "--local", *DIR], "-n 0", "expected a positive number"),
    "gen: -n -5": G(["generate", "noisy_sine", "-n", "-5", "--local", *DIR], "-n -5", "expected a positive number"),
    "gen: -n many": G(["generate", "noisy_sine", "-n", "many", *DIR], "argument -n: invalid int value: 'many'"),
    "gen: no -n": G(["generate", "noisy_sine", *DIR], "the following arguments are required: -n"),
    "gen: --jobs 0": G([*GEN, "--local", "--jobs", "0"], "--jobs"),
    "gen: --time 0": G([*GEN, "--time", "0"], "--time 0", "expected whole minutes >= 1"),
    "gen: --time -1": G([*GEN, "--time", "-1"], "--time -1", "expected whole minutes >= 1"),
    "gen: --time soon": G([*GEN, "--time", "soon"], "--time", "invalid int value: 'soon'"),
    "gen: no --time and no history": G(["generate", "noisy_sine", "-n", "10", "--jobs", "1", "--dir", f"{TMP}/fresh"], "--time",
                                       files={"fresh/datasets.py": TEST_DATASETS}),
    "gen: --max-parallel 0": G([*GEN, "--local", "--time", "1", "--max-parallel", "0"], "--max-parallel 0", ">= 1"),
    "gen: --slurm-options with a bad time": G([*GEN, "--time", "1", "--slurm-options=--time=abc"], "'abc' is not a SLURM time"),
    "gen: --slurm-options with a bad memory": G([*GEN, "--time", "1", "--slurm-options=--mem=lots"], "'lots' is not a SLURM memory"),
    "gen: --slurm-options not an option": G([*GEN, "--time", "1", "--slurm-options=qos=high"], "is not an sbatch option"),
    "gen: --slurm-options with an open quote": G([*GEN, "--time", "1", "--slurm-options='--qos"], "--slurm-options: "),
    "gen: --dir with a control character for SLURM": G(["generate", "seq", "-n", "5", "--time", "1", "--dir", f"{TMP}/g\ndir"],
                                                       "--dir", "control character", files={"g\ndir/datasets.py": TEST_DATASETS}),
    "gen: no datasets.py": G(["generate", "x", "-n", "1", "--time", "1", "--dir", f"{TMP}/empty"], "no datasets.py in",
                             files={"empty/.keep": ""}),
    "gen: --dir is not there": G(["generate", "x", "-n", "1", "--time", "1", "--dir", f"{TMP}/nowhere"], "no datasets.py in"),
    "gen: datasets.py does not import": G(["generate", "x", "-n", "1", "--time", "1", "--dir", f"{TMP}/b"], "datasets.py:1",
                                          "SyntaxError", files={"b/datasets.py": "def (:\n"}),
    "gen: datasets.py raises": G(["generate", "x", "-n", "1", "--time", "1", "--dir", f"{TMP}/b"], "datasets.py:1",
                                 "ValueError", files={"b/datasets.py": "raise ValueError('no')\n"}),
    "gen: datasets.py calls sys.exit": G(["generate", "x", "-n", "1", "--time", "1", "--dir", f"{TMP}/b"], "datasets.py",
                                         "SystemExit", files={"b/datasets.py": "import sys\nsys.exit(0)\n"}),
    "gen: datasets.py defines no dataset": G(["generate", "x", "-n", "1", "--time", "1", "--dir", f"{TMP}/b"],
                                             "defines no dataset", files={"b/datasets.py": "x = 1\n"}),
    # ---- move, need, list -----------------------------------------------------------------------
    "gen: move with nothing there": G(["move", "noisy_sine", "5", "train", "--params", "{'left': 0.0}", *DIR], "no samples"),
    "gen: move more than there are": G(["move", "noisy_sine", "11", "train", *DIR], "move 11 samples", "only 10 are unassigned"),
    "gen: move 0": G(["move", "noisy_sine", "0", "train", *DIR], "move N=0", ">= 1"),
    "gen: move -3": G(["move", "noisy_sine", "-3", "train", *DIR], "move N=-3", ">= 1"),
    "gen: move many": G(["move", "noisy_sine", "many", "train", *DIR], "invalid int value: 'many'"),
    "gen: bad group name": G(["move", "noisy_sine", "5", "bad/name", *DIR], "group 'bad/name'"),
    "gen: empty group name": G(["move", "noisy_sine", "5", "", *DIR], "group ''"),
    "gen: group ..": G(["move", "noisy_sine", "5", "..", *DIR], "group '..'"),
    "gen: group with a newline": G(["move", "noisy_sine", "5", "a\nb", *DIR], "group 'a\\nb'"),
    "gen: group named unassigned": G(["move", "noisy_sine", "5", "unassigned", *DIR], "group 'unassigned'", "not 'unassigned'"),
    "gen: move of an unknown dataset": G(["move", "nothing", "5", "train", *DIR], "no dataset 'nothing'"),
    "gen: move with unknown parameters": G(["move", "noisy_sine", "5", "train", "--params", "{'nope': 1}", *DIR],
                                           "unknown parameter", "nope"),
    "gen: need -1": G(["need", "noisy_sine", "-1", "--group", "train", *DIR], "need N=-1", ">= 0"),
    "gen: need without --group": G(["need", "noisy_sine", "5", *DIR], "the following arguments are required: --group"),
    "gen: need --jobs 0": G(["need", "noisy_sine", "5", "--group", "train", "--jobs", "0", *DIR], "--jobs 0"),
    "gen: need of a bad group": G(["need", "noisy_sine", "5", "--group", "a/b", *DIR], "group 'a/b'"),
    "gen: need of an unknown dataset": G(["need", "nothing", "5", "--group", "train", *DIR], "no dataset 'nothing'"),
    "gen: list of a directory whose datasets.py does not import": G(["list", "--dir", f"{TMP}/b"], "datasets.py", "SyntaxError",
                                                                    files={"b/datasets.py": "def (:\n", "b/gen_cache/.keep": ""}),
    "gen: no subcommand": G([], "the following arguments are required: COMMAND"),
    "gen: unknown subcommand": G(["frobnicate"], "invalid choice: 'frobnicate'"),
    "gen: unknown flag": G(["list", "--fast", *DIR], "unrecognized arguments: --fast"),
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A directory with datasets.py and 10 generated, unassigned noisy_sine samples."""
    d = tmp_path_factory.mktemp("gen")
    (d / "datasets.py").write_text(TEST_DATASETS)
    assert main(["generate", "noisy_sine", "-n", "10", "--local", "--time", "1", "--dir", str(d)]) == 0
    return d


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, tmp_path, cache, capsys, monkeypatch):
    shutil.copytree(cache, tmp_path, dirs_exist_ok=True)
    run_in_process(main, "scorch-gen", case, tmp_path, capsys, monkeypatch)
