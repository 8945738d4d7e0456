"""render() and submit() against the real private SLURM of tests/slurm_fixture.py: sbatch reads the
quoted header of a hostile script as meant (paths with quotes, $(...), ; and %), nothing is
injected, and submit's errors are one line."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from scorch.errors import EXIT_FAILURE
from scorch.jobs import JobSpec, SubmitError, render, submit
from tests.jobs.test_render import HOSTILE_NAME

pytestmark = pytest.mark.slow
HOSTILE_DIR = "x $(touch PWNED2) `touch PWNED3`; y %j 100%"
WRITE_ARGV = "import json, os, sys; json.dump([os.getcwd(), *sys.argv[1:]], open('argv.json', 'w'))"


def _write(spec: JobSpec, path: Path) -> Path:
    path.write_text(render(spec))
    return path


def test_a_hostile_script_runs_under_slurm_exactly_as_written(slurm, tmp_path):
    work = tmp_path / HOSTILE_DIR
    logs = work / HOSTILE_NAME
    logs.mkdir(parents=True)
    words = [HOSTILE_NAME, HOSTILE_DIR, "$HOME", "\\", '"', "*"]
    spec = JobSpec(commands=[[sys.executable, "-c", WRITE_ARGV, *words]], job_name=HOSTILE_NAME, chdir=str(work),
                   log_dir=str(logs), sbatch_args=('--comment="$(touch PWNED4)"',), time="5")
    job = submit(_write(spec, tmp_path / "job.sbatch"), env=slurm.env)
    assert slurm.wait_job(job, timeout=120) == "COMPLETED", slurm.log_tail()
    assert json.loads((work / "argv.json").read_text()) == [str(work), *words]
    assert (logs / f"slurm-{job}.out").is_file()  # --output: the literal % escaped, %j expanded
    assert f"JobName={HOSTILE_NAME} " in slurm.run(["scontrol", "-o", "show", "job", job]).stdout
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))


def test_the_gen_shape_runs_every_array_task_in_the_batch_shell(slurm, tmp_path):
    code = "import os; open(f\"task-{os.environ['SLURM_ARRAY_TASK_ID']}\", 'w').write(str(os.getppid()))"
    spec = JobSpec(commands=[[sys.executable, "-c", code]], job_name="gen-shape", chdir=str(tmp_path),
                   log_dir=str(tmp_path), log_name="%A_%a.out", array="0-2", requeue=False, launcher=None,
                   cpus_per_task=1, mem="100M", time="2", sbatch_args=("--comment=gen",))
    job = submit(_write(spec, tmp_path / "gen.sbatch"), env=slurm.env)
    assert slurm.wait_job(job, timeout=120) == "COMPLETED"
    assert sorted(p.name for p in tmp_path.glob("task-*")) == ["task-0", "task-1", "task-2"]
    shown = slurm.run(["scontrol", "-o", "show", "job", job]).stdout
    assert "MinMemoryNode=100M" in shown and "Comment=gen" in shown  # from the #SBATCH lines alone


def test_submit_errors_are_one_line(slurm, tmp_path):
    spec = JobSpec(commands=[["true"]], job_name="x", chdir=str(tmp_path), log_dir=str(tmp_path),
                   partition="nope")
    script = _write(spec, tmp_path / "x.sbatch")
    with pytest.raises(SubmitError) as info:
        submit(script, env=slurm.env)
    assert info.value.refused and str(info.value).startswith(f"sbatch refused {script}: ")
    assert info.value.exit_code == EXIT_FAILURE  # SLURM's refusal, not the user's input
    assert "partition" in str(info.value).lower() and "\n" not in str(info.value)
    with pytest.raises(SubmitError, match="sbatch not found on PATH") as info:
        submit(script, env={**slurm.env, "PATH": str(tmp_path)})
    assert not info.value.refused
