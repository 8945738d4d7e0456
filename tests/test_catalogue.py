"""Bad input across every command: one line on stderr, exit code 2 (scorch-train's own, larger
catalogue is tests/test_bad_input.py)."""
import shutil
import subprocess

import pytest

from tests.helpers import BIN, DATASET, MODEL, REPO, env

CASES = {
    # name: (command, args, words expected in the one line)
    "gen: unknown parameter": ("scorch-gen", ["generate", "noisy_sine", "-n", "10", "--local", "--params", "{'nope': 1}"],
                               ["unknown parameter", "nope", "valid: left, right, std_dev"]),
    "gen: params not a literal": ("scorch-gen", ["generate", "noisy_sine", "-n", "10", "--local", "--params", "{'left': "],
                                  ["--params", "not a Python literal dict"]),
    "gen: params as code": ("scorch-gen", ["generate", "noisy_sine", "-n", "10", "--local", "--params", "__import__('os')"],
                            ["--params"]),
    "gen: no --time and no history": ("scorch-gen", ["generate", "noisy_sine", "-n", "10", "--jobs", "1"], ["--time"]),
    "gen: unknown dataset": ("scorch-gen", ["generate", "nothing", "-n", "10", "--local"], ["no dataset 'nothing'", "noisy_sine"]),
    "gen: move with nothing there": ("scorch-gen", ["move", "noisy_sine", "5", "train"], ["no samples"]),
    "check: missing dataset file": ("scorch-check", ["--model", MODEL, "--dataset", "/nope.py"], ["--dataset", "file not found"]),
    "report: no such run": ("scorch-report", ["/nonexistent/run"], ["/nonexistent/run", "no such directory"]),
    "train: bad config file": ("scorch-train", ["--model", MODEL, "--dataset", DATASET, "--config", "CFG"], ["--config", "cannot parse"]),
    "train: config with an unknown key": ("scorch-train", ["--model", MODEL, "--dataset", DATASET, "--config", "CFG2"],
                                          ["unknown setting 'epoch'"]),
    "train: --KEY=VALUE of no setting": ("scorch-train", ["--model", MODEL, "--dataset", DATASET, "--learning_rate=3"],
                                         ["--learning_rate", "unknown setting", "valid settings", "lr_schedule"]),
    "train: --resume of no such run": ("scorch-train", ["--resume", "--name", "ghost"], ["--resume", "there is no run runs/ghost"]),
    "sweep: no grid": ("scorch-sweep", ["--model", MODEL, "--dataset", DATASET], ["--grid"]),
    "sweep: a name with a newline": ("scorch-sweep", ["--name", "a\nb", "--grid", "lr=0.1,0.2", "--model", MODEL, "--dataset", DATASET],
                                     ["--name", "control character"]),
    "check: --lr not finite": ("scorch-check", ["--model", MODEL, "--dataset", DATASET, "--lr", "inf"], ["--lr", "finite"]),
    "check: unknown flag": ("scorch-check", ["--model", MODEL, "--dataset", DATASET, "--fast"], ["unrecognized arguments: --fast"]),
    "init: empty DIR": ("scorch-init", [""], ["DIR", "use . for the current one"]),
    "init: DIR with a control character": ("scorch-init", ["new\rproject"], ["DIR", "control character"]),
    "report: unknown flag": ("scorch-report", ["--plot", "x"], ["unrecognized arguments: --plot"]),
    "gen: bad group name": ("scorch-gen", ["move", "noisy_sine", "5", "bad/name"], ["group 'bad/name'"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_command_says_one_line_and_exits_2(case, tmp_path):
    command, args, words = CASES[case]
    shutil.copy(REPO / "examples" / "gen" / "datasets.py", tmp_path / "datasets.py")
    (tmp_path / "bad.yaml").write_text("epochs: [1, 2\n")
    (tmp_path / "unknown.toml").write_text("epoch = 3\n")
    args = [str(tmp_path / "bad.yaml") if a == "CFG" else str(tmp_path / "unknown.toml") if a == "CFG2" else a for a in args]
    out = subprocess.run([str(BIN / command), *args], capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    written = {p.name for p in tmp_path.iterdir()} - {"bad.yaml", "datasets.py", "unknown.toml", "__pycache__"}
    assert not written


def test_init_refuses_to_overwrite(tmp_path):
    assert subprocess.run([str(BIN / "scorch-init"), str(tmp_path)], env=env(), capture_output=True).returncode == 0
    out = subprocess.run([str(BIN / "scorch-init"), str(tmp_path)], env=env(), capture_output=True, text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "--force" in out.stderr
