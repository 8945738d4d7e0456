"""scorch's own launch: the ranks' command line, and bad launch input (one line, exit code 2)."""
import subprocess
import sys

import pytest

from scorch import launch
from scorch.cli.train import main, parse_config
from scorch.errors import ScorchError
from scorch.launch.agent import check_no_launcher, child_argv, wanted
from tests.helpers import base_args, env, scorch_train, snapshot


def test_child_argv_drops_launch_flags_and_pins_the_name():
    argv = ["--model", "m.py", "--nproc-per-node", "2", "--master-port=1234", "--epochs", "3"]
    assert child_argv(argv, "run1") == ["--model", "m.py", "--epochs", "3", "--name", "run1"]


def test_child_argv_drops_every_launch_flag_and_their_set_forms():
    argv = ["--nnodes", "2", "--node-rank=1", "--master-addr", "10.0.0.1", "--max-restarts", "3", "--set",
            "nnodes=2", "--set=lr=0.5", "--name", "x", "--join-timeout", "9"]
    assert child_argv(argv, "ignored") == ["--set", "lr=0.5", "--name", "x", "--join-timeout", "9"]


def test_a_restart_resumes_instead_of_starting_over():
    assert child_argv(["--overwrite", "--epochs", "3"], "r", restart=True) == ["--epochs", "3", "--name", "r", "--auto-resume"]
    assert child_argv(["--resume", "--name", "r"], "r", restart=True) == ["--resume", "--name", "r"]
    assert child_argv(["--auto-resume"], "r", restart=True) == ["--auto-resume", "--name", "r"]


TRAINING_STACK = ("scorch.training.trainer", "scorch.training.build", "scorch.training.loop", "scorch.data",
                  "scorch.contract.userfiles", "scorch.rundir.checkpoint")


def test_the_agent_imports_no_training_stack():
    code = f"import sys, scorch.launch.agent; print([m for m in {TRAINING_STACK!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"  # torch itself it needs: its TCPStore is where the agents meet


def config(tmp_path, *flags):
    return parse_config(base_args(tmp_path, "r", *flags))


def test_scorch_launches_for_several_ranks_several_nodes_or_restarts(tmp_path):
    assert not wanted(config(tmp_path))
    assert wanted(config(tmp_path, "--nnodes", "2"))  # one rank per node is a distributed job too
    assert wanted(config(tmp_path, "--nproc-per-node", "2"))
    assert wanted(config(tmp_path, "--max-restarts", "1"))


SRUN = {"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_STEP_ID": "0", "SLURM_TASKS_PER_NODE": "2(x2)"}


@pytest.mark.parametrize("flags, expected", [
    (["--nnodes", "2", "--nproc-per-node", "2"],
     "--nproc-per-node, --nnodes: this process was started by srun, which set the world size (4 ranks); drop"),
    (["--nnodes", "2"], "--nnodes: this process was started by srun, which set the world size (4 ranks), and 2 x 1 = 2 "
                        "disagrees with it; drop --nnodes"),
    (["--max-restarts", "2"], "--max-restarts: this process was started by srun"),
    (["--node-rank", "0", "--master-port", "1234"], "--node-rank, --master-port: this process was started by srun"),
])
def test_launch_flags_under_a_launcher_are_refused(tmp_path, flags, expected):
    given = {flag[2:].replace("-", "_"): value for flag, value in zip(flags[::2], flags[1::2])}
    with pytest.raises(ScorchError) as exc:
        check_no_launcher(launch.detect(SRUN), config(tmp_path, *flags), given)
    assert str(exc.value).startswith(expected) and "\n" not in str(exc.value)


def test_no_launcher_and_no_flags_pass(tmp_path):
    check_no_launcher(launch.detect({}), config(tmp_path, "--nnodes", "2"), {"nnodes": 2})
    check_no_launcher(launch.detect(SRUN), config(tmp_path), {"epochs": 3})


def test_nnodes_under_a_real_mpirun_is_one_line_exit_2(tmp_path):
    out = scorch_train(base_args(tmp_path, "r", "--nnodes", "2", "--epochs", "1"), np_=1)
    assert out.returncode == 2, out.stderr
    [line] = [line for line in out.stderr.splitlines() if line.startswith("scorch")]  # mpirun adds its own banner
    assert line == ("scorch-train: error: --nnodes: this process was started by mpirun, which set the "
                                  "world size (1 rank), and 2 x 1 = 2 disagrees with it; drop --nnodes (use the "
                                  "launcher's own options), or start scorch-train without a launcher")


@pytest.mark.parametrize("flags, expected", [
    (["--nnodes", "2", "--node-rank", "2"], "--node-rank: 2 must be below --nnodes 2"),
    (["--nnodes", "2", "--node-rank", "-1"], "--node-rank: expected a whole number >= 0, got -1"),
    (["--nnodes", "0"], "--nnodes: expected a whole number >= 1, got 0"),
    (["--join-timeout", "0"], "--join-timeout: expected a finite number > 0 and < 1e+09, got 0.0"),
    (["--join-timeout", "nan"], "--join-timeout: expected a finite number > 0 and < 1e+09, got nan"),
    (["--max-restarts", "-1"], "--max-restarts: expected a whole number >= 0, got -1"),
])
def test_bad_launch_values_are_one_line_exit_2_and_touch_nothing(tmp_path, capsys, flags, expected):
    run = tmp_path / "r"
    run.mkdir()
    (run / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    assert main(base_args(tmp_path, "r", *flags)) == 2
    assert capsys.readouterr().err == f"scorch-train: error: {expected}\n"
    assert snapshot(tmp_path) == before
