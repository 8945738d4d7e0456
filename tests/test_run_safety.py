"""A failing command never costs an existing run: --overwrite keeps the old run until the new one
has a checkpoint, and --resume changes nothing until its checks pass."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from scorch.cli.train import main
from scorch.rundir import checksum
from scorch.rundir.directory import recover, replaced_path
from tests.helpers import BIN, DATASET, MODEL, base_args, env, snapshot

GOOD_MODEL = Path(MODEL).read_text()
GOOD_DATASET = Path(DATASET).read_text()
RAISES_AT_40 = GOOD_DATASET.replace("        j = self.ids[i]\n",
                                    "        j = self.ids[i]\n        if i == 40:\n            raise OSError('bad sector')\n")


@pytest.fixture
def old_run(tmp_path):
    assert main(base_args(tmp_path, "r", "--epochs", "2", "--batch-size", "16")) == 0
    return tmp_path / "r"


def write(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def error_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("scorch-train")]


OVERWRITE_FAILURES = {
    # name: (model source, dataset source, extra args, exit code, words in the one line)
    "a sample raises in epoch 1": (None, RAISES_AT_40, [], 2, ["DataSet.__getitem__", "bad sector"]),
    "a criterion without gradient": (GOOD_MODEL.replace("return nn.functional.cross_entropy(preds[0], targets[0])",
                                                        "return nn.functional.cross_entropy(preds[0], targets[0]).detach()"),
                                     None, [], 2, ["Socket.criterion", "without a gradient"]),
    "an optimizer that is a string": (GOOD_MODEL + "\n    def optimizer(self, params):\n        return 'adam'\n",
                                      None, [], 2, ["Socket.optimizer", "expected a torch.optim.Optimizer"]),
    "a loss that turns NaN at step 2": (GOOD_MODEL.replace(
        "return nn.functional.cross_entropy(preds[0], targets[0])",
        "self.steps = getattr(self, 'steps', 0) + self.model.training\n"
        "        loss = nn.functional.cross_entropy(preds[0], targets[0])\n"
        "        return loss * float('nan') if self.steps == 2 else loss"), None, [], 2, ["loss is nan", "step 2"]),
}


@pytest.mark.parametrize("case", list(OVERWRITE_FAILURES))
def test_a_failing_overwrite_leaves_the_old_run_byte_for_byte(case, tmp_path, old_run, capsys):
    model_src, dataset_src, extra, code, words = OVERWRITE_FAILURES[case]
    model = write(tmp_path, "m.py", model_src) if model_src else MODEL
    dataset = write(tmp_path, "d.py", dataset_src) if dataset_src else DATASET
    before = snapshot(old_run)
    capsys.readouterr()
    assert main(base_args(tmp_path, "r", "--overwrite", "--epochs", "3", "--batch-size", "16", *extra,
                          model=model, dataset=dataset)) == code
    err = error_lines(capsys)
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert snapshot(old_run) == before
    assert not replaced_path(old_run).exists()


def test_an_overwrite_that_wrote_its_first_checkpoint_replaces_the_old_run(tmp_path, old_run):
    model = write(tmp_path, "m.py", GOOD_MODEL)
    assert main(base_args(tmp_path, "r", "--overwrite", "--epochs", "1", "--batch-size", "8", model=model)) == 0
    assert torch.load(old_run / "checkpoints" / "last.pt", weights_only=True)["step"] == 8
    assert (old_run / "m.py").exists() and not replaced_path(old_run).exists()


def test_an_overwrite_killed_before_its_first_checkpoint_gives_the_old_run_back(tmp_path, old_run):
    before = snapshot(old_run)
    e = env()
    e["SCORCH_TEST_SLOW"] = "0.05"
    slow = str(tmp_path.parent / "slow_dataset.py")
    from tests.helpers import FIXTURES
    cmd = [str(BIN / "scorch-train"), *base_args(tmp_path, "r", "--overwrite", "--epochs", "3",
                                                  dataset=str(FIXTURES / "noisy_dataset.py"))]
    proc = subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while (time.time() < deadline and not (old_run / "config.json").exists()) or not replaced_path(old_run).exists():
        time.sleep(0.02)
    assert replaced_path(old_run).exists(), "the overwrite never started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (old_run / "checkpoints" / "last.pt").exists()
    recover(old_run)  # what the next scorch-train on this run does first
    assert snapshot(old_run) == before and not replaced_path(old_run).exists()
    del slow


def damage_history(run, how):
    path = run / "history.csv"
    text = path.read_text()
    if how == "garbage line":
        path.write_text(text + "garbage,,,\n")
        return
    if how == "renamed header":
        path.write_text(text.replace("epoch,step", "Epoch,step", 1))
        return
    path.write_text("")


RESUME_DAMAGE = {
    # name: (what to do to the run, words in the one line)
    "history.csv emptied": (lambda r: (r / "history.csv").write_text(""), ["history.csv", "epoch"]),
    "history.csv with a garbage line": (lambda r: damage_history(r, "garbage line"), ["history.csv", "line 4", "garbage"]),
    "history.csv header renamed": (lambda r: damage_history(r, "renamed header"), ["history.csv", "header"]),
    "history.csv missing a row": (lambda r: (r / "history.csv").write_text((r / "history.csv").read_text().rsplit("\n", 2)[0] + "\n"),
                                  ["history.csv", "epochs [1]", "epochs 1 to 2"]),
    "meta.json damaged": (lambda r: (r / "meta.json").write_text("{not json"), ["meta.json", "damaged"]),
    "config.json damaged": (lambda r: (r / "config.json").write_text("[1, 2"), ["config.json"]),
    "last.pt is a text file": (lambda r: (r / "checkpoints" / "last.pt").write_text("hello"), ["last.pt", "truncated or corrupt"]),
    "last.pt has NaN weights": (lambda r: nan_checkpoint(r / "checkpoints" / "last.pt"), ["not finite", "body"]),
}


def nan_checkpoint(path):
    state = torch.load(path, weights_only=True)
    state["model"]["body.0.weight"][0, 0] = float("nan")
    state[checksum.KEY] = checksum.digest(state)  # a NaN scorch itself saved, not bytes changed on disk
    torch.save(state, path)


@pytest.mark.parametrize("case", list(RESUME_DAMAGE))
def test_a_resume_of_a_damaged_run_is_one_line_and_changes_nothing(case, old_run, capsys):
    damage, words = RESUME_DAMAGE[case]
    damage(old_run)
    before = snapshot(old_run)
    capsys.readouterr()
    assert main(base_args(old_run.parent, "r", "--resume", "--epochs", "4")) == 2
    err = error_lines(capsys)
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert "Traceback" not in err[0]
    assert snapshot(old_run) == before


def test_a_resume_with_a_broken_model_file_changes_nothing(tmp_path, old_run, capsys):
    before = snapshot(old_run)
    model = write(tmp_path, "m.py", GOOD_MODEL.replace("nn.Linear(16, 3)", "nn.Linear(16, 5)"))
    assert main(base_args(tmp_path, "r", "--resume", "--epochs", "4", model=model)) == 2
    err = error_lines(capsys)
    assert len(err) == 1 and "body.2.weight" in err[0] and "(3, 16)" in err[0] and "(5, 16)" in err[0], err
    assert snapshot(old_run) == before


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_dataset_error_names_the_file_mode_and_sample_with_or_without_workers(tmp_path, workers, capsys):
    dataset = write(tmp_path, "d.py", RAISES_AT_40)
    assert main(base_args(tmp_path, "r", "--epochs", "1", "--workers", workers, dataset=dataset)) == 2
    err = error_lines(capsys)
    assert len(err) == 1 and "d.py: DataSet.__getitem__ (mode='train') raised OSError: bad sector (sample 40)" in err[0], err
    assert "worker" not in err[0] and "Traceback" not in err[0]


def test_a_sample_of_strings_is_blamed_on_the_dataset_before_training(tmp_path, capsys):
    dataset = write(tmp_path, "d.py", GOOD_DATASET.replace("return [self.index.x[j]], [self.index.y[j]]",
                                                           "return [self.index.x[j]], ['cat']"))
    assert main(base_args(tmp_path, "r", "--epochs", "1", dataset=dataset)) == 2
    err = error_lines(capsys)
    assert len(err) == 1 and "DataSet.__getitem__ (mode='train')" in err[0] and "str values at targets position 0" in err[0]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("where", ["train", "valid"])
def test_a_failed_epoch_leaves_no_dataloader_worker_behind(tmp_path, where, capsys):
    # Workers ignore the stop signals (scorch.data.Loader): if a failed epoch left them waiting, the
    # process that called main() would wait for them forever at its exit (multiprocessing joins them).
    import multiprocessing

    source = RAISES_AT_40 if where == "train" else GOOD_DATASET.replace(
        "        j = self.ids[i]\n", "        j = self.ids[i]\n        if self.ids is self.index.ranges['valid']:\n"
        "            raise OSError('bad sector')\n")
    dataset = write(tmp_path, "d.py", source)
    assert main(base_args(tmp_path, "w", "--workers", "2", "--batch-size", "8", dataset=dataset)) == 2
    assert "bad sector" in capsys.readouterr().err
    assert multiprocessing.active_children() == []
