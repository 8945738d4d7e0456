"""The sbatch script is one pure function, compared to golden files; paths with spaces and quotes."""
from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from scorch.errors import ScorchError
from scorch.slurm import SlurmOptions, array_spec, render_for, render_sbatch

GOLDEN = Path(__file__).parent / "golden"
ODD = "/data/it's a \"dir\" with spaces"
TRAIN = "/opt/venv/bin/scorch-train"


def _train_script() -> str:
    return render_sbatch(
        commands=[[TRAIN, "--config", f"{ODD}/runs/r1/job_config.json", "--run-root", f"{ODD}/runs", "--name", "r1",
                   "--auto-resume", "--no-progress"]],
        job_name="r1", output=f"{ODD}/runs/r1/slurm-%j.out", chdir=ODD, nodes=2, ntasks_per_node=4, gpus_per_node=4,
        cpus_per_task=8, time="1-00:00:00", partition="gpu", account="proj 1", sbatch_args=["--qos=high", "#SBATCH --mem=64G"],
        setup=["module load cuda/12.1", "export NCCL_DEBUG=WARN"], launcher="srun", signal_seconds=120,
    )


def _array_script() -> str:
    def cmd(i: int, name: str) -> list[str]:
        return [TRAIN, "--config", f"{ODD}/sw/configs/{name}.json", "--run-root", f"{ODD}/sw", "--name", name,
                "--auto-resume", "--no-progress"]

    names = ["00-lr=0.1,opt=adam", "01-lr=0.1,opt=sgd", "02-lr=0.01,opt=adam", "03-lr=0.01,opt=sgd"]
    return render_sbatch(commands=[cmd(i, n) for i, n in enumerate(names)], job_name="sw", output=f"{ODD}/sw/logs/slurm-%A_%a.out",
                         chdir=ODD, launcher="mpirun", array="1-3%2")


@pytest.mark.parametrize("make, golden", [(_train_script, "train_job.sbatch"), (_array_script, "sweep_array.sbatch")])
def test_matches_golden_file(make, golden):
    # To update after a deliberate change: write make() to the golden file and review the diff.
    assert make() == (GOLDEN / golden).read_text()


@pytest.mark.parametrize("make", [_train_script, _array_script])
def test_is_valid_bash_with_sorted_flags_that_round_trip(make):
    text = make()
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    flags = [line for line in text.splitlines() if line.startswith("#SBATCH --")]
    sorted_part = flags[: len([f for f in flags if not f.startswith(("#SBATCH --qos", "#SBATCH --mem"))])]
    assert sorted_part == sorted(sorted_part)
    values = dict(shlex.split(line[len("#SBATCH "):])[0].lstrip("-").partition("=")[::2] for line in flags)
    assert values["chdir"] == ODD
    assert values["output"].startswith(ODD) and values["requeue"] == "" and values["open-mode"] == "append"
    assert values["signal"].startswith("B:USR1@")


def test_values_reach_the_command_unchanged():
    cmd_line = next(line for line in _train_script().splitlines() if line.startswith("cmd=("))
    argv = shlex.split(cmd_line[len("cmd=("):-1])
    assert argv[2] == f"{ODD}/runs/r1/job_config.json" and argv[4] == f"{ODD}/runs"
    text = _train_script()
    assert "#SBATCH --account='proj 1'" in text and "#SBATCH --qos=high\n#SBATCH --mem=64G" in text
    assert 'srun --cpus-per-task=8 "${cmd[@]}" &' in text


def test_array_element_runs_its_combination(tmp_path):
    """Run the array script's selection with bash: element i's cmd is combination i."""
    text = _array_script()
    head = text.split("\n# Either signal")[0]  # everything up to the launch: setup and the case
    for i in range(4):
        out = subprocess.run(["bash", "-c", head + '\nprintf "%s\\n" "${cmd[@]}"'], text=True, capture_output=True,
                             env={"SLURM_ARRAY_TASK_ID": str(i), "PATH": "/usr/bin:/bin"})
        assert out.returncode == 0, out.stderr
        argv = out.stdout.splitlines()
        assert argv[argv.index("--config") + 1].startswith(f"{ODD}/sw/configs/0{i}-")
    out = subprocess.run(["bash", "-c", head], text=True, capture_output=True, env={"SLURM_ARRAY_TASK_ID": "9"})
    assert out.returncode == 2 and "no run for array task '9'" in out.stderr


def test_render_for_uses_every_option():
    opts = SlurmOptions(nodes=3, ntasks_per_node=2, time="10", partition="p", account="a", launcher="mpirun",
                        sbatch_args=("--mem=1G",), setup=("true",), signal_seconds=30)
    text = render_for(opts, commands=[["x"]], job_name="j", output="o", chdir="/")
    for line in ("--nodes=3", "--ntasks-per-node=2", "--time=10", "--partition=p", "--account=a", "--signal=B:USR1@30",
                 "--mem=1G"):
        assert f"#SBATCH {line}\n" in text
    assert "\ntrue\n" in text and '\nmpirun "${cmd[@]}" &\n' in text


@pytest.mark.parametrize("kwargs, flag", [
    ({"nodes": 0}, "--nodes"), ({"ntasks_per_node": 0}, "--ntasks-per-node"), ({"gpus_per_node": -1}, "--gpus-per-node"),
    ({"launcher": "ssh"}, "--launcher"), ({"sbatch_args": ("qos=high",)}, "--sbatch-arg"),
    ({"setup": ("a\nb",)}, "--setup"), ({"time": "1 h"}, "--time"), ({"signal_seconds": 0}, "--signal-seconds"),
])
def test_options_check_themselves_and_name_the_flag(kwargs, flag):
    with pytest.raises(ScorchError, match=f"^{flag}"):
        SlurmOptions(**kwargs)


def test_array_spec():
    assert array_spec([0, 1, 2, 5]) == "0-2,5"
    assert array_spec([3, 1], parallel=2) == "1,3%2"
    assert array_spec([4]) == "4"
