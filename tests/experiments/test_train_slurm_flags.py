"""scorch-train --slurm / --submit without a cluster: the files it writes, and what it refuses."""
from __future__ import annotations

import json
from pathlib import Path

from scorch.cli.train import main, parse_config
from scorch.config import INVOCATION_KEYS
from tests.helpers import DATASET, MODEL, snapshot

ODD = "it's a \"run\" root"


def _args(root: Path, name: str, *extra: str) -> list[str]:
    return ["--model", MODEL, "--dataset", DATASET, "--run-root", str(root), "--name", name, *extra]


def test_slurm_writes_script_and_resolved_config(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = Path(ODD)  # relative: the job gets absolute paths
    argv = _args(root, "r1", "--epochs", "3", "--lr", "0.05", "--set", "lr_schedule=[[1,0.05],[3,0.01]]",
                 "--slurm", "--ntasks-per-node", "2", "--time", "5", "--setup", "export OMP_NUM_THREADS=1")
    assert main(argv) == 0
    run = tmp_path / ODD / "r1"
    assert sorted(p.name for p in run.iterdir()) == ["job.sbatch", "job_config.json"]
    assert f"wrote {run / 'job.sbatch'}" in capsys.readouterr().out
    saved = json.loads((run / "job_config.json").read_text())
    assert not set(saved) & set(INVOCATION_KEYS)
    assert saved["lr_schedule"] == [[1, 0.05], [3, 0.01]] and saved["epochs"] == 3 and saved["model"] == MODEL
    # The job's command line resolves to the same config as the one given here.
    script = (run / "job.sbatch").read_text()
    assert f"--run-root '{tmp_path}/it'\"'\"'s a \"run\" root'" in script
    assert "--auto-resume" in script and "#SBATCH --ntasks-per-node=2" in script and "\nexport OMP_NUM_THREADS=1\n" in script
    again = parse_config(["--config", str(run / "job_config.json"), "--run-root", str(run.parent), "--name", "r1"])
    given = parse_config(argv[: argv.index("--slurm")])
    assert {k: v for k, v in again.to_dict().items() if k not in INVOCATION_KEYS} == \
        {k: v for k, v in given.to_dict().items() if k not in INVOCATION_KEYS}
    # Only job files in it: writing the job again is allowed.
    assert main([*argv, "--nodes", "2"]) == 0
    assert "#SBATCH --nodes=2" in (run / "job.sbatch").read_text()


def test_refuses_a_used_run_dir_and_leaves_it_unchanged(tmp_path, capsys):
    run = tmp_path / "r"
    (run / "checkpoints").mkdir(parents=True)
    (run / "history.csv").write_text("epoch\n1\n")
    before = snapshot(run)
    assert main(_args(tmp_path, "r", "--slurm")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists and is not empty" in err
    assert main(_args(tmp_path, "r", "--slurm", "--resume")) == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err
    assert snapshot(run) == before
    assert main(_args(tmp_path, "r", "--slurm", "--overwrite")) == 0
    assert sorted(p.name for p in run.iterdir()) == ["job.sbatch", "job_config.json"]


def test_bad_input_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    cases = [
        (["--slurm", "--nodes", "0"], "--nodes: expected a whole number >= 1"),
        (["--slurm", "--nproc-per-node", "2"], "--ntasks-per-node"),
        (["--slurm", "--launcher", "ssh"], "--launcher"),
        (["--slurm", "--epochs", "0"], "--epochs"),
    ]
    for extra, message in cases:
        assert main(_args(tmp_path, "x", *extra)) == 2, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x").exists()
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    assert main(_args(tmp_path, "x", "--submit")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sbatch not found on PATH" in err and "job.sbatch" in err


def test_help_lists_the_slurm_flags(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for flag in ("--slurm", "--submit", "--nodes", "--ntasks-per-node", "--gpus-per-node", "--cpus-per-task", "--time",
                 "--partition", "--account", "--sbatch-arg", "--setup", "--launcher", "--signal-seconds"):
        assert flag in out
