"""scorch-sweep run here: every combination in its own run directory, skip/resume, summary.csv."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from scorch.cli.sweep import main
from scorch.errors import EXIT_PREEMPTED
from scorch.experiments.sweep import parse_grid, split_values
from tests.helpers import BIN, DATASET, FIXTURES, MODEL, env, scorch_train, snapshot

pytestmark = pytest.mark.slow
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def sweep(args: list[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess[str]:
    e = {**env(), **ONE_THREAD}
    return subprocess.run([str(BIN / "scorch-sweep"), *args], capture_output=True, text=True, timeout=timeout, env=e, **kw)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_four_combinations_summary_and_a_second_run_skips_them(tmp_path):
    root = tmp_path / "it's a root"
    args = ["--model", MODEL, "--dataset", DATASET, "--epochs", "2", "--batch-size", "8", "--no-progress",
            "--grid", "lr=0.1,0.01", "--grid", "optimizer=adam,sgd", "--run-root", str(root), "--name", "s", "--parallel", "2"]
    out = sweep(args)
    assert out.returncode == 0, out.stderr
    sdir = root / "s"
    record = json.loads((sdir / "sweep.json").read_text())
    names = [r["name"] for r in record["runs"]]
    assert names == ["00-lr=0.1,optimizer=adam", "01-lr=0.1,optimizer=sgd", "02-lr=0.01,optimizer=adam", "03-lr=0.01,optimizer=sgd"]
    for r in record["runs"]:
        config = json.loads((sdir / r["name"] / "config.json").read_text())
        assert (config["lr"], config["optimizer"]) == (r["settings"]["lr"], r["settings"]["optimizer"])
        assert config["epochs"] == 2 and config["batch_size"] == 8
    table = rows(sdir / "summary.csv")
    assert sorted(t["name"] for t in table) == names and all(t["status"] == "finished" for t in table)
    best = [float(t["best"]) for t in table]
    assert best == sorted(best)  # valid/loss: lowest first
    for t in table:
        history = rows(sdir / t["name"] / "history.csv")
        assert float(t["final"]) == float(history[-1]["valid/loss"])
        assert float(t["best"]) == min(float(h["valid/loss"]) for h in history)
    assert out.stdout.count("finished") == 4 and "summary.csv" in out.stdout

    before = snapshot(sdir)
    again = sweep(args)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("finished, skipped") == 4
    after = snapshot(sdir)
    assert {k: v for k, v in after.items() if k != "summary.csv"} == {k: v for k, v in before.items() if k != "summary.csv"}

    summary = sweep(["--summary", str(sdir)])
    assert summary.returncode == 0 and len(rows(sdir / "summary.csv")) == 4


def test_a_stopped_sweep_resumes_exactly(tmp_path):
    """SIGTERM to scorch-sweep: the running run checkpoints mid-epoch (exit 3), no new run starts; the same
    command resumes it, and its weights equal an uninterrupted run of the same config."""
    model, dataset = str(FIXTURES / "dropout_model.py"), str(FIXTURES / "noisy_dataset.py")
    args = ["--model", model, "--dataset", dataset, "--epochs", "3", "--batch-size", "4", "--lr", "0.05",
            "--grid", "seed=1,2", "--run-root", str(tmp_path), "--name", "s"]
    e = {**env(), **ONE_THREAD, "SCORCH_TEST_SLOW": "0.004"}
    proc = subprocess.Popen([str(BIN / "scorch-sweep"), *args], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    first = tmp_path / "s" / "00-seed=1"
    deadline = time.time() + 120
    while time.time() < deadline and not (first / "checkpoints" / "last.pt").exists():
        time.sleep(0.02)
    time.sleep(0.15)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_PREEMPTED, err
    assert "run the same command again" in err
    assert json.loads((first / "meta.json").read_text())["status"] == "preempted"
    assert not (tmp_path / "s" / "01-seed=2").exists()

    again = sweep(args)
    assert again.returncode == 0, again.stderr
    assert {r["status"] for r in rows(tmp_path / "s" / "summary.csv")} == {"finished"}
    whole = scorch_train(["--config", str(tmp_path / "s" / "configs" / "00-seed=1.json"), "--run-root", str(tmp_path),
                          "--name", "whole", "--no-progress"], extra_env=ONE_THREAD)
    assert whole.returncode == 0, whole.stderr
    a = torch.load(first / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] and all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
    assert len(json.loads((first / "meta.json").read_text())["sessions"]) == 2


def test_a_failing_run_is_named_and_the_others_finish(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(Path(MODEL).read_text().replace(
        "    def __init__(self):\n        super().__init__()",
        "    def __init__(self, fail=False):\n        super().__init__()\n        assert not fail, 'asked to fail'"))
    out = sweep(["--model", str(model), "--dataset", DATASET, "--epochs", "1", "--batch-size", "8",
                 "--grid", "model.fail=False,True", "--run-root", str(tmp_path), "--name", "s"])
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("scorch-sweep: 1 of 2 runs failed: 01-model.fail=True")
    table = {t["name"]: t for t in rows(tmp_path / "s" / "summary.csv")}
    assert table["00-model.fail=False"]["status"] == "finished" and table["01-model.fail=True"]["status"] == "new"
    assert "asked to fail" in (tmp_path / "s" / "logs" / "01-model.fail=True.log").read_text()


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    base = ["--model", MODEL, "--dataset", DATASET, "--run-root", str(tmp_path), "--name", "s"]
    cases = [
        (["--grid", "lrr=0.1,0.2"], "--grid lrr: unknown setting; did you mean lr?"),
        (["--grid", "zzz=0.1,0.2"], "--grid zzz: unknown setting; valid keys: accumulate, activation_checkpointing, amp,"),
        (["--grid", "model.n_filters=8,16"], "model.n_filters: unknown setting of"),
        (["--grid", "lr=0.1,abc"], "lr = 'abc' is a str, expected float"),
        (["--grid", "name=a,b"], "--grid name: scorch-sweep sets name itself"),
        (["--grid", "lr=0.1,,0.2"], "an empty value"),
        (["--grid", "lr=0.1", "--grid", "lr=0.2"], "given twice"),
        (["--grid", "lr=0.1", "--resume"], "--resume: scorch-sweep skips finished runs"),
        (["--grid", "lr=0.1", "--ntasks-per-node", "2"], "--ntasks-per-node describes a SLURM job: add --slurm"),
        (["--grid", "lr=0.1", "--parallel", "0"], "--parallel"),
        ([], "give at least one --grid"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (extra, err)
    assert not (tmp_path / "s").exists()
    assert main(["--summary", str(tmp_path)]) == 2
    assert "no sweep.json" in capsys.readouterr().err


def test_another_sweep_in_the_same_directory_is_refused(tmp_path, capsys):
    base = ["--model", MODEL, "--dataset", DATASET, "--run-root", str(tmp_path), "--name", "s", "--epochs", "1"]
    from scorch.cli.train import parse_config
    from scorch.experiments import sweep as sweep_mod

    sweep_mod.prepare(tmp_path / "s", base[:4] + base[-2:], ["lr=0.1,0.2"], parse_config)
    assert main([*base, "--grid", "lr=0.3"]) == 2
    assert "holds another sweep" in capsys.readouterr().err


def test_grid_values_split_outside_brackets_and_quotes():
    assert split_values("0.1, 0.01") == ["0.1", "0.01"]
    assert split_values("[[3,0.1],[9,0.01]],cosine,'a,b'") == ["[[3,0.1],[9,0.01]]", "cosine", "'a,b'"]
    (axis,) = parse_grid(["lr_schedule=[[3,0.1],[9,0.01]],cosine"])
    assert axis.values == ([[3, 0.1], [9, 0.01]], "cosine")


def test_hostile_sweep_values_are_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    base = ["--model", MODEL, "--dataset", DATASET, "--grid", "lr=0.1,0.2"]
    cases = [
        (["--run-root", str(tmp_path), "--name", "s\nt"], "--name: 's\\nt' holds a control character"),
        (["--run-root", str(tmp_path), "--name", "s\nt", "--slurm"], "--name: "),
        (["--run-root", str(tmp_path / "r\x1b"), "--name", "s", "--slurm"], "--run-root: "),
        (["--run-root", str(tmp_path), "--name", "s", "--slurm", "--time", "abc"], "--time: 'abc' is not a SLURM time"),
        (["--run-root", str(tmp_path), "--name", "s", "--slurm", "--mem", "lots"], "--mem: 'lots' is not a SLURM memory"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (extra, err)
    odd = tmp_path / "cwd\nnewline"
    odd.mkdir()
    monkeypatch.chdir(odd)
    assert main([*base, "--run-root", str(tmp_path), "--name", "s", "--slurm"]) == 2
    assert "the working directory: " in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [odd.name]
