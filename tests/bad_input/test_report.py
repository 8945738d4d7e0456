"""scorch-report's bad input: directories that are no runs, damaged run files, and outputs it must
not write (a directory, or a file of the run: it writes only its own PNG). Nothing is written."""
from __future__ import annotations

import shutil

import pytest

from scorch.cli.report import main
from scorch.cli.train import main as train
from tests.bad_input.harness import TMP, Case, params, run_in_process
from tests.helpers import base_args

RUN = f"{TMP}/runs/r"  # each case's copy of a finished two-epoch run


def R(args: list[str], *words: str, files: dict[str, str] | None = None, xfail: str | None = None) -> Case:
    return Case(args, *words, files=files, xfail=xfail)


CASES = {
    "report: no such run": R(["/nonexistent/run"], "/nonexistent/run", "no such directory"),
    "report: a file": R([f"{TMP}/f"], "no such directory", files={"f": "x"}),
    "report: a directory that is no run": R([f"{TMP}/d"], "no config.json", "expected a run directory", files={"d/x": ""}),
    "report: no history.csv": R([f"{TMP}/d"], "no history.csv", files={"d/config.json": "{}"}),
    "report: config.json that is no JSON": R([f"{TMP}/d"], "config.json", "not readable JSON",
                                             files={"d/config.json": "{", "d/history.csv": "epoch\n1\n"}),
    "report: config.json a list": R([f"{TMP}/d"], "config.json", "expected a JSON object",
                                    files={"d/config.json": "[]", "d/history.csv": "epoch\n1\n"}),
    "report: an unknown monitor_mode": R([f"{TMP}/d"], "monitor_mode 'up'",
                                         files={"d/config.json": '{"monitor_mode": "up"}', "d/history.csv": "epoch\n1\n"}),
    "report: history.csv without epochs": R([f"{TMP}/d"], "history.csv", "no 'epoch' column",
                                            files={"d/config.json": "{}", "d/history.csv": "step,lr\n1,0.1\n"}),
    "report: a row without an epoch": R([f"{TMP}/d"], "history.csv", "a row has no epoch number",
                                        files={"d/config.json": "{}", "d/history.csv": "epoch,lr\n,0.1\n"}),
    "report: history.csv of binary garbage": R([f"{TMP}/d"], "history.csv", "nothing to plot",
                                               files={"d/config.json": "{}", "d/history.csv": "\x00\x00\x00,\x00\n"}),
    "report: no RUN_DIR": R([], "the following arguments are required: RUN_DIR"),
    "report: unknown flag": R(["--plot", "x"], "unrecognized arguments: --plot"),
    "report: --out onto a directory": R([RUN, "--out", f"{TMP}/out"], "--out", "directory", files={"out/keep": ""}),
    "report: --out onto the run's history.csv": R([RUN, "--out", f"{RUN}/history.csv"], "--out", "history.csv"),
    "report: --out onto the run's config.json": R([RUN, "--out", f"{RUN}/config.json"], "--out", "config.json"),
    "report: --out onto a checkpoint": R([RUN, "--out", f"{RUN}/checkpoints/last.pt"], "--out", "last.pt"),
    "report: --out into a directory that is not there": R([RUN, "--out", f"{TMP}/no/where.png"], "--out", "no/where.png"),
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert train(base_args(root, "r", "--epochs", "2")) == 0
    return root


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, finished, capsys, monkeypatch):
    shutil.copytree(finished, tmp_path / "runs")
    run_in_process(main, "scorch-report", case, tmp_path, capsys, monkeypatch)
