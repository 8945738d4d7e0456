"""scorch-sweep's bad input: the grid, the shared scorch-train arguments, names, SLURM options and
sweep directories. Every case fails before a run starts, and writes nothing."""
from __future__ import annotations

import json
import os
import socket

import pytest

from scorch.cli.sweep import main
from tests.bad_input.harness import TMP, Case, params, run_in_process
from tests.helpers import DATASET, MODEL

FILES = ["--model", MODEL, "--dataset", DATASET, "--run-root", f"{TMP}/runs", "--epochs", "1"]
OTHER_SWEEP = json.dumps({"base_args": ["--epochs", "9"], "grid": ["lr=1"], "runs": []})
LIVE_HOLDER = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": "2024-01-01T00:00:00+0000"})
FAR_HOLDER = json.dumps({"host": "elsewhere.example", "pid": 4242, "since": "2024-01-01T00:00:00+0000"})


def S(extra: list[str], *words: str, files: dict[str, str] | None = None, grid: bool = True) -> Case:
    """A sweep of the good files with ``extra`` (and ``--grid lr=0.1,0.2`` unless ``grid`` is False)."""
    return Case([*FILES, *(["--grid", "lr=0.1,0.2"] if grid else []), *extra], *words, files=files)


CASES = {
    "no grid": S([], "--grid", grid=False),
    "a grid without =": S(["--grid", "lr"], "--grid 'lr'", "expected KEY=VALUE1,VALUE2", grid=False),
    "a grid without values": S(["--grid", "lr="], "--grid 'lr='", "expected KEY=VALUE1,VALUE2", grid=False),
    "a grid with an empty value": S(["--grid", "lr=0.1,,0.2"], "an empty value", grid=False),
    "a grid with a repeated value": S(["--grid", "lr=0.1,0.1"], "a value is repeated", grid=False),
    "a grid of an unknown setting": S(["--grid", "learning_rate=0.1,0.2"], "--grid learning_rate", "unknown setting",
                                      "did you mean lr?", grid=False),
    "a grid of a setting like none": S(["--grid", "zzz=1,2"], "--grid zzz", "unknown setting", "valid keys", grid=False),
    "a grid of the name": S(["--grid", "name=a,b"], "--grid name", "sets name itself", grid=False),
    "a grid of the run root": S(["--grid", "run_root=a,b"], "--grid run_root", "sets run_root itself", grid=False),
    "a grid of --resume": S(["--grid", "resume=True,False"], "--grid resume", "sets resume itself", grid=False),
    "a grid key given twice": S(["--grid", "lr=0.1", "--grid", "lr=0.2"], "--grid lr", "given twice", grid=False),
    "a grid value of the wrong type": S(["--grid", "epochs=one,two"], "epochs = 'one'", "expected int", grid=False),
    "a grid value out of range": S(["--grid", "lr=0,0.1"], "--lr", "finite number > 0", grid=False),
    "a grid of an unknown model setting": S(["--grid", "model.n_filters=8,16"], "model.n_filters", "unknown setting",
                                            grid=False),
    "a grid of schedules that are none": S(["--grid", "lr_schedule=exponential,cosine"], "lr_schedule", "'exponential'", grid=False),
    "a grid value with an open bracket": S(["--grid", "lr_schedule=[[3,0.1]"], "lr_schedule", "not a schedule", grid=False),
    "--parallel 0": S(["--parallel", "0"], "--parallel", ">= 1"),
    "--parallel -1": S(["--parallel", "-1"], "--parallel", ">= 1"),
    "--parallel many": S(["--parallel", "many"], "--parallel", "invalid int value"),
    "a name with a newline": S(["--name", "a\nb"], "--name", "control character"),
    "a name with a slash": S(["--name", "a/b"], "--name", "'a/b'"),
    "an empty name": S(["--name", ""], "--name", "''"),
    "the name ..": S(["--name", ".."], "--name", "'..'"),
    "a name of 300 bytes": S(["--name", "s" * 300], "--name", "at most 255"),
    "an empty run root": Case(["--model", MODEL, "--dataset", DATASET, "--grid", "lr=0.1,0.2", "--run-root", ""],
                              "--run-root", "use . for the current one"),
    "a run root with an escape": Case(["--model", MODEL, "--dataset", DATASET, "--grid", "lr=0.1,0.2", "--run-root", "r\x1b[1m"],
                                      "--run-root", "control character"),
    "a SLURM time without --slurm": S(["--time", "10"], "--time describes a SLURM job", "add --slurm"),
    "a SLURM time that is none": S(["--slurm", "--time", "abc"], "--time", "'abc' is not a SLURM time"),
    "a SLURM memory that is none": S(["--slurm", "--mem", "lots"], "--mem", "'lots'"),
    "SLURM nodes 0": S(["--slurm", "--nodes", "0"], "--nodes", ">= 1"),
    "an unknown SLURM launcher": S(["--slurm", "--launcher", "ssh"], "--launcher", "invalid choice: 'ssh'"),
    "--nproc-per-node for a SLURM sweep": S(["--slurm", "--nproc-per-node", "2"], "--nproc-per-node", "--ntasks-per-node"),
    "--resume for every run": S(["--resume"], "--resume", "resumes the others itself"),
    "--overwrite for every run": S(["--overwrite"], "--overwrite", "remove the sweep directory"),
    "a flag scorch-train does not know": S(["--fast"], "unrecognized arguments: --fast"),
    "a bad value for every run": S(["--batch-size", "0"], "--batch-size", ">= 1"),
    "a model file that is not there": Case(["--model", f"{TMP}/nope.py", "--dataset", DATASET, "--grid", "lr=0.1,0.2",
                                            "--run-root", f"{TMP}/runs"], "--model", "file not found"),
    "a model file that calls sys.exit": Case(["--model", f"{TMP}/m.py", "--dataset", DATASET, "--grid", "lr=0.1,0.2",
                                              "--run-root", f"{TMP}/runs"], "m.py", "sys.exit(0)",
                                             files={"m.py": "import sys\nsys.exit(0)\n"}),
    "a dataset file that does not import": Case(["--model", MODEL, "--dataset", f"{TMP}/d.py", "--grid", "lr=0.1,0.2",
                                                 "--run-root", f"{TMP}/runs"], "d.py", "SyntaxError",
                                                files={"d.py": "class DataSet(:\n"}),
    "a directory holding another sweep": S(["--name", "s"], "holds another sweep", files={"runs/s/sweep.json": OTHER_SWEEP}),
    "a sweep.json that is no JSON": S(["--name", "s"], "sweep.json", "not readable JSON", files={"runs/s/sweep.json": "{"}),
    "a sweep directory another scorch-sweep holds": S(["--name", "s"], "runs/s is in use by another scorch-sweep",
                                                      f"pid {os.getpid()} on host {socket.gethostname()}", "runs/.s.lock",
                                                      files={"runs/.s.lock": LIVE_HOLDER}),
    "a sweep directory a scorch-sweep on another host holds": S(["--name", "s"], "scorch-sweep on another host",
                                                                "pid 4242 on host elsewhere.example", "remove",
                                                                files={"runs/.s.lock": FAR_HOLDER}),
    "a sweep lock that is not a lock": S(["--name", "s"], "not a lock scorch wrote", files={"runs/.s.lock": "{"}),
    "--summary of no sweep": Case(["--summary", f"{TMP}/nothing"], "no sweep.json", "expected a sweep directory"),
    "--summary of a damaged sweep": Case(["--summary", f"{TMP}/s"], "sweep.json", "not a sweep record",
                                         files={"s/sweep.json": '{"runs": [{"index": 0}]}'}),
    "--summary of a file": Case(["--summary", f"{TMP}/f"], "no sweep.json", files={"f": "x"}),
}


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys, monkeypatch):
    run_in_process(main, "scorch-sweep", case, tmp_path, capsys, monkeypatch)
