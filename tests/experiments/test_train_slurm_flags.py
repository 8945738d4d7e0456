"""scorch-train --slurm / --submit without a cluster: the files it writes, and what it refuses."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

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


def test_overwrite_keeps_the_old_run_until_the_job_is_submitted_and_respects_the_lock(tmp_path, capsys, monkeypatch):
    from scorch.rundir.lock import RunLock
    run = tmp_path / "r"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"weights")
    (run / "history.csv").write_text("epoch\n1\n")
    before = snapshot(run)
    # A scorch-train holding the run (here: this process) refuses the job: nothing moves.
    lock = RunLock(run)
    lock.acquire()
    try:
        assert main(_args(tmp_path, "r", "--slurm", "--overwrite")) == 2
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lock" in err, err
    assert snapshot(run) == before
    # sbatch fails (none on PATH): the old run is back, byte for byte, and nothing is left aside.
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert main(_args(tmp_path, "r", "--overwrite", "--submit")) == 2
    assert "sbatch not found on PATH" in capsys.readouterr().err
    assert snapshot(run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


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
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for flag in ("--slurm", "--submit", "--nodes", "--ntasks-per-node", "--gpus-per-node", "--cpus-per-task", "--time",
                 "--partition", "--account", "--sbatch-arg", "--setup", "--launcher", "--signal-seconds", "--mem"):
        assert flag in out


def test_options_reach_the_script():
    """Every SlurmOptions field, through slurm.job_spec, into the one render()."""
    from scorch.experiments.slurm import SlurmOptions, job_spec
    from scorch.jobs import render

    opts = SlurmOptions(nodes=3, ntasks_per_node=2, time="10", mem="2G", partition="p", account="a", launcher="mpirun",
                        sbatch_args=("--qos=low",), setup=("true",), signal_seconds=30)
    text = render(job_spec(opts, commands=[["x"]], job_name="j", log_dir="/o", chdir="/"))
    for line in ("--nodes=3", "--ntasks-per-node=2", "--time=10", "--mem=2G", "--partition=p", "--account=a",
                 "--signal=B:USR1@30", "--qos=low"):
        assert f"#SBATCH {line}\n" in text
    assert "\ntrue\n" in text and '\nmpirun "${cmd[@]}" &\n' in text


@pytest.mark.parametrize("kwargs, flag", [
    ({"nodes": 0}, "--nodes"), ({"ntasks_per_node": 0}, "--ntasks-per-node"), ({"gpus_per_node": -1}, "--gpus-per-node"),
    ({"launcher": "ssh"}, "--launcher"), ({"sbatch_args": ("qos=high",)}, "--sbatch-arg"),
    ({"setup": ("a\nb",)}, "--setup"), ({"time": "1 h"}, "--time"), ({"signal_seconds": 0}, "--signal-seconds"),
    ({"time": "abc"}, "--time"), ({"mem": "8GB"}, "--mem"), ({"sbatch_args": ("--time=abc",)}, "--sbatch-arg"),
    ({"partition": "a b"}, "--partition"), ({"account": "a\nb"}, "--account"),
])
def test_options_check_themselves_and_name_the_flag(kwargs, flag):
    from scorch.errors import ScorchError
    from scorch.experiments.slurm import SlurmOptions

    with pytest.raises(ScorchError, match=f"^{flag}") as info:
        SlurmOptions(**kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("extra, message", [
    (["--time", "abc"], "--time: 'abc' is not a SLURM time; expected MINUTES, MM:SS, HH:MM:SS, D-HH"),
    (["--time", "1:75"], "--time: '1:75' is not a SLURM time"),
    (["--mem", "8X"], "--mem: '8X' is not a SLURM memory size"),
    (["--sbatch-arg=--time=abc"], "--sbatch-arg: 'abc' is not a SLURM time"),
    (["--sbatch-arg=--comment=a\nb"], "--sbatch-arg: '--comment=a\\nb' holds a control character"),
    (["--partition", "gpu\n#SBATCH --qos=high"], "--partition: "),
    (["--setup", "true\ntouch PWNED"], "--setup: "),
])
def test_bad_slurm_values_are_one_line_exit_2(tmp_path, capsys, extra, message):
    assert main(_args(tmp_path, "x", "--slurm", *extra)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x").exists()


def test_control_characters_in_names_and_directories_are_refused_before_anything_is_written(tmp_path, capsys,
                                                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    for root, name, message in ((tmp_path, "a\nb", "--name: 'a\\nb' holds a control character ('\\n')"),
                                (tmp_path, "a\x1b[31mb", "--name: "),
                                (tmp_path / "r\nroot", "ok", "--run-root: ")):
        assert main(_args(root, name, "--slurm")) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    odd = tmp_path / "cwd\twith a tab"
    odd.mkdir()
    monkeypatch.chdir(odd)
    assert main(_args(tmp_path / "runs", "ok", "--slurm")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the working directory: " in err and "control character" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [odd.name]


def test_a_hostile_name_reaches_the_job_intact_and_runs_nothing(tmp_path, capsys, monkeypatch):
    """A name with a quote, ;, $(...) and a comment: the script runs no part of it (bash does the
    selection of the command here; tests/jobs/test_slurm.py submits such a script to SLURM)."""
    monkeypatch.chdir(tmp_path)
    name = "a'; touch PWNED #$(touch PWNED2) 100%"
    assert main(_args(tmp_path / "runs", name, "--slurm")) == 0
    script = (tmp_path / "runs" / name / "job.sbatch").read_text()
    head = script.split("\n# A signal reaches")[0]
    out = subprocess.run(["bash", "-c", head + '\nprintf "%s\\n" "${cmd[@]}"'], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    argv = out.stdout.splitlines()
    assert argv[argv.index("--name") + 1] == name
    assert "#SBATCH --job-name='a'\"'\"'; touch PWNED #$(touch PWNED2) 100%'\n" in script
    assert "100%%/slurm-%j.out" in script
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
