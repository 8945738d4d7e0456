"""Every sbatch script scorch writes comes from one pure function, compared to one golden file per
shape (train job, sweep array, gen array, hostile values); paths with spaces and quotes; values that
could inject shell code run through bash and inject nothing.

To update a golden file after a deliberate change: ``SCORCH_UPDATE_GOLDEN=1 pytest tests/jobs`` and
review the diff.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scorch.jobs import JobSpec, array_spec, check_memory, check_sbatch_option, check_time, option_lines, render

GOLDEN = Path(__file__).parent / "golden"
ODD = "/data/it's a \"dir\" with spaces"
TRAIN = "/opt/venv/bin/scorch-train"
PYTHON = "/opt/venv/bin/python"
# Hostile values without control characters: quotes, $(...), backticks, ;, %, a trailing comment.
HOSTILE_NAME = "a'; touch PWNED #"
HOSTILE_DIR = "/tmp/x $(touch PWNED2) `touch PWNED3`; y %j 100%"


def train_spec() -> JobSpec:
    return JobSpec(
        commands=[[TRAIN, "--config", f"{ODD}/runs/r1/job_config.json", "--run-root", f"{ODD}/runs", "--name", "r1",
                   "--auto-resume", "--no-progress"]],
        job_name="r1", log_dir=f"{ODD}/runs/r1", log_name="slurm-%j.out", chdir=ODD, nodes=2, ntasks_per_node=4,
        gpus_per_node=4, cpus_per_task=8, time="1-00:00:00", partition="gpu", account="proj 1",
        sbatch_args=("--qos=high", "#SBATCH --mem=64G"), setup=("module load cuda/12.1", "export NCCL_DEBUG=WARN"),
        launcher="srun", signal_seconds=120,
    )


def sweep_spec() -> JobSpec:
    names = ["00-lr=0.1,opt=adam", "01-lr=0.1,opt=sgd", "02-lr=0.01,opt=adam", "03-lr=0.01,opt=sgd"]
    commands = [[TRAIN, "--config", f"{ODD}/sw/configs/{name}.json", "--run-root", f"{ODD}/sw", "--name", name,
                 "--auto-resume", "--no-progress"] for name in names]
    return JobSpec(commands=commands, job_name="sw", log_dir=f"{ODD}/sw/logs", log_name="slurm-%A_%a.out",
                   chdir=ODD, launcher="mpirun", array="1-3%2")


GEN_COMMAND = [PYTHON, "-m", "scorch.gen._worker", "--dir", ODD, "--params-json", '{"name":"a b","x":1}',
               "--total", "100", "--jobs", "4"]


def gen_spec() -> JobSpec:
    return JobSpec(commands=[GEN_COMMAND], job_name="gen-seq-0123456789ab", array="0-3", time="7", mem="1024M",
                   cpus_per_task=1, log_dir=f"{ODD}/gen_cache/seq/0123456789ab/logs", log_name="%A_%a.out",
                   chdir=ODD, requeue=False, launcher=None)


def hostile_spec() -> JobSpec:
    return JobSpec(commands=[[PYTHON, "-c", "x", HOSTILE_NAME, HOSTILE_DIR, "$HOME", "\\", '"', "*"]],
                   job_name=HOSTILE_NAME, log_dir=f"{HOSTILE_DIR}/{HOSTILE_NAME}", chdir=HOSTILE_DIR,
                   account="proj 1", sbatch_args=('--comment="$(touch PWNED4)"',), time="10")


SHAPES = [(train_spec, "train_job.sbatch"), (sweep_spec, "sweep_array.sbatch"), (gen_spec, "gen_array.sbatch"),
          (hostile_spec, "hostile.sbatch")]


@pytest.mark.parametrize("make, golden", SHAPES)
def test_matches_golden_file(make, golden):
    text = render(make())
    if os.environ.get("SCORCH_UPDATE_GOLDEN"):
        (GOLDEN / golden).write_text(text)
    assert text == (GOLDEN / golden).read_text()


def test_render_is_pure():
    assert render(train_spec()) == render(train_spec()) and render(gen_spec()) == render(gen_spec())


def _sbatch_values(text: str) -> dict[str, str]:
    flags = [line for line in text.splitlines() if line.startswith("#SBATCH --")]
    return dict(shlex.split(line[len("#SBATCH "):])[0].lstrip("-").partition("=")[::2] for line in flags)


@pytest.mark.parametrize("make", [train_spec, sweep_spec])
def test_is_valid_bash_with_sorted_flags_that_round_trip(make):
    text = render(make())
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    flags = [line for line in text.splitlines() if line.startswith("#SBATCH --")]
    sorted_part = flags[: len([f for f in flags if not f.startswith(("#SBATCH --qos", "#SBATCH --mem"))])]
    assert sorted_part == sorted(sorted_part)
    values = _sbatch_values(text)
    assert values["chdir"] == ODD
    assert values["output"].startswith(ODD) and values["requeue"] == "" and values["open-mode"] == "append"
    assert values["signal"].startswith("B:USR1@")


def test_values_reach_the_command_unchanged():
    cmd_line = next(line for line in render(train_spec()).splitlines() if line.startswith("cmd=("))
    argv = shlex.split(cmd_line[len("cmd=("):-1])
    assert argv[2] == f"{ODD}/runs/r1/job_config.json" and argv[4] == f"{ODD}/runs"
    text = render(train_spec())
    assert "#SBATCH --account='proj 1'" in text and "#SBATCH --qos=high\n#SBATCH --mem=64G" in text
    assert 'srun --kill-on-bad-exit=1 --cpus-per-task=8 "${cmd[@]}" &' in text


def _selected_command(text: str, task: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the script up to its launch with bash and print the command it would start, one word a line."""
    head = text.split("\n# A signal reaches")[0].split("\nexec ")[0]  # setup and the cmd selection
    env = {"PATH": "/usr/bin:/bin", **({"SLURM_ARRAY_TASK_ID": task} if task is not None else {})}
    return subprocess.run(["bash", "-c", head + '\nprintf "%s\\n" "${cmd[@]}"'], text=True, capture_output=True,
                          env=env)


def test_array_element_runs_its_combination():
    """Run the array script's selection with bash: element i's cmd is combination i."""
    text = render(sweep_spec())
    for i in range(4):
        out = _selected_command(text, str(i))
        assert out.returncode == 0, out.stderr
        argv = out.stdout.splitlines()
        assert argv[argv.index("--config") + 1].startswith(f"{ODD}/sw/configs/0{i}-")
    out = _selected_command(text, "9")
    assert out.returncode == 2 and "no run for array task '9'" in out.stderr


def test_gen_array_flags_sorted_and_values_round_trip_through_shell_quoting():
    text = render(gen_spec())
    lines = text.splitlines()
    flags = [line for line in lines if line.startswith("#SBATCH ")]
    assert flags == sorted(flags)
    values = _sbatch_values(text)
    assert values["chdir"] == ODD and values["array"] == "0-3" and values["mem"] == "1024M"
    assert values["output"] == f"{ODD}/gen_cache/seq/0123456789ab/logs/%A_%a.out"
    # Every task runs the worker itself (no launcher, no requeue trap), with its words intact.
    assert lines[-1] == 'exec "${cmd[@]}"' and "trap" not in text and "requeue" not in text
    for task in ("0", "3"):
        out = _selected_command(text, task)
        assert out.returncode == 0 and out.stdout.splitlines() == GEN_COMMAND


def test_train_shape_traps_the_signals_and_srun_ends_on_a_bad_exit():
    text = render(train_spec())
    assert "trap 'on_signal USR1' USR1" in text and "trap 'on_signal TERM' TERM" in text
    assert "srun --kill-on-bad-exit=1" in text and "odls_base_sigkill_timeout" not in text
    sweep = render(sweep_spec())
    assert '\nmpirun "${cmd[@]}" &\n' in sweep
    # mpirun reads its kill timeout from its environment (measured: 1 s by default loses a slow
    # stop checkpoint, tests/launch/test_mpirun_stops.py); the user's own value wins
    assert 'export OMPI_MCA_odls_base_sigkill_timeout="${OMPI_MCA_odls_base_sigkill_timeout:-25}"' in sweep


# The command of the job below: it stops with exit 3 on USR1 (as the ranks do), or exits with the code it is given.
STOPPABLE = ("import pathlib, signal, sys, time; "
             "signal.signal(signal.SIGUSR1, lambda *a: sys.exit(3)); "
             "sys.argv[1] == 'wait' or sys.exit(int(sys.argv[1])); "
             "pathlib.Path('ready').touch(); time.sleep(120)")


@pytest.mark.parametrize("how, code, requeued", [
    ("3", 3, True),            # a stop with a checkpoint by --max-time
    ("1", 1, False), ("0", 0, False),
    ("USR1", 3, True),         # the time-limit warning, passed on to the command
    ("TERM", 3, False),        # scancel: the command stops, the job is not requeued
])
def test_the_job_requeues_after_a_stop_with_a_checkpoint_unless_cancelled(tmp_path, how, code, requeued):
    """The script's own logic, run by bash with the launcher left out; ``scontrol`` here is a
    stand-in script that records its arguments (a real requeue under SLURM:
    tests/experiments/test_slurm_jobs.py)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text('#!/bin/sh\necho "$@" > scontrol.args\n')
    (bin_dir / "scontrol").chmod(0o755)
    spec = dataclasses.replace(train_spec(), commands=[[sys.executable, "-c", STOPPABLE, "wait" if how.isupper() else how]],
                               launcher=None, chdir=str(tmp_path), setup=())
    script = tmp_path / "job.sh"
    script.write_text(render(spec))
    job = subprocess.Popen(["bash", str(script)], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                           env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "7"})
    if how.isupper():
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists():
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()[1]
            time.sleep(0.02)
        job.send_signal(getattr(signal, f"SIG{how}"))
    _, err = job.communicate(timeout=60)
    assert job.returncode == code, err
    assert (tmp_path / "scontrol.args").exists() == requeued, err
    if requeued:
        assert (tmp_path / "scontrol.args").read_text().split() == ["requeue", "7"]


def test_a_percent_in_the_log_directory_is_escaped_once():
    values = _sbatch_values(render(hostile_spec()))
    assert values["output"] == f"{HOSTILE_DIR}/{HOSTILE_NAME}".replace("%", "%%") + "/slurm-%j.out"
    assert values["chdir"] == HOSTILE_DIR and values["job-name"] == HOSTILE_NAME  # not patterns: as they are


def _run_script(spec: JobSpec, cwd: Path) -> list[str]:
    """Run the whole script with bash in ``cwd``; its command writes its argv to argv.json."""
    script = cwd / "job.sh"
    script.write_text(render(spec))
    out = subprocess.run(["bash", str(script)], cwd=cwd, capture_output=True, text=True, timeout=60,
                         env={"PATH": os.environ["PATH"]})
    assert out.returncode == 0, out.stderr
    return json.loads((cwd / "argv.json").read_text())


@pytest.mark.parametrize("requeue", [True, False])
def test_hostile_values_inject_nothing(tmp_path, requeue):
    """The hostile script, run by bash (the launcher left out: this tests the shell's quoting; SLURM's
    reading of the header is tests/jobs/test_slurm.py): no PWNED file appears and the command gets
    every word exactly as given."""
    words = hostile_spec().commands[0][3:]
    write_argv = "import json, sys; json.dump(sys.argv[1:], open('argv.json', 'w'))"
    spec = dataclasses.replace(hostile_spec(), commands=[[sys.executable, "-c", write_argv, *words]], launcher=None,
                               requeue=requeue)
    assert _run_script(spec, tmp_path) == list(words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["argv.json", "job.sh"]


CONTROL = ["a\nb", "a\rb", "a\tb", "a\x1bb", "a\x00b", "a\x85b", "a\x7fb"]


@pytest.mark.parametrize("value", CONTROL)
@pytest.mark.parametrize("field", ["job_name", "chdir", "log_dir", "log_name", "time", "mem", "partition", "account",
                                   "setup", "sbatch_args", "commands"])
def test_render_refuses_control_characters_in_any_value(field, value):
    values = {"setup": (value,), "sbatch_args": (f"--comment={value}",), "commands": [["x", value]],
              "time": f"1{value}", "mem": f"1{value}"}
    with pytest.raises(ValueError, match="control character") as info:
        render(dataclasses.replace(train_spec(), **{field: values.get(field, value)}))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"commands": []}, "at least one"), ({"commands": [["a"], ["b"]]}, "need an array"),
    ({"nodes": 0}, "nodes: expected a whole number >= 1"), ({"launcher": "ssh"}, "launcher"),
    ({"time": "abc"}, "not a SLURM time"), ({"mem": "8X"}, "not a SLURM memory size"),
    ({"sbatch_args": ("qos=high",)}, "not an sbatch option"), ({"log_name": "a/b"}, "file name pattern"),
    ({"job_name": ""}, "non-empty"),
])
def test_spec_checks_itself(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(train_spec(), **kwargs)


def test_slurm_time_and_memory_formats():
    for good in ("30", "0", "90:00", "1:02:03", "2-12", "2-12:30", "2-12:30:15", "UNLIMITED", "infinite"):
        check_time("--time", good)
    for bad in ("abc", "1h", "1:60", "1:2:3:4", "2-24", "-5", "1.5", "2-1:60", ""):
        with pytest.raises(ValueError, match=r"^--time: .* expected MINUTES, MM:SS, HH:MM:SS, D-HH"):
            check_time("--time", bad)
    for good in ("500M", "8G", "8g", "4096", "1T", "0"):
        check_memory("--mem", good)
    for bad in ("8GB", "1.5G", "lots", "-1", ""):
        with pytest.raises(ValueError, match=r"^--mem: .* not a SLURM memory size"):
            check_memory("--mem", bad)


def test_time_and_memory_inside_raw_sbatch_options_are_checked():
    for good in ("--qos=high", "-p gpu", "--time=10", "-t 1-00:00", "-t5", "#SBATCH --mem=8G", "--mem-per-cpu 500M"):
        check_sbatch_option("--sbatch-arg", good)
    for bad, message in (("--time=abc", "not a SLURM time"), ("-t abc", "not a SLURM time"),
                         ("--mem=8X", "memory size"), ("qos=high", "not an sbatch option"),
                         ("--comment='a", "not one sbatch option")):
        with pytest.raises(ValueError, match=f"^--sbatch-arg: .*{message}"):
            check_sbatch_option("--sbatch-arg", bad)


def test_option_lines_group_words_per_option():
    assert option_lines(["--qos=high", "-p", "gpu", "--comment", "a b"]) == ("--qos=high", "-p gpu", "--comment 'a b'")


def test_array_spec():
    assert array_spec([0, 1, 2, 5]) == "0-2,5"
    assert array_spec([3, 1], parallel=2) == "1,3%2"
    assert array_spec([4]) == "4"
    assert array_spec(range(4)) == "0-3"
