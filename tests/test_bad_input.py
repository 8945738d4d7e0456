"""Bad input: one line on stderr naming the file/class/method, exit code 2, nothing on disk changed."""
import math
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from scorch.cli.train import main
from tests.helpers import DATASET, MODEL, base_args, scorch_train, snapshot

GOOD_MODEL = Path(MODEL).read_text()
GOOD_DATASET = Path(DATASET).read_text()


def model_with(**replace):
    src = GOOD_MODEL
    for old in replace:
        assert old in src or old == "_", old
    for old, new in replace.items():
        src = src.replace(old, new)
    return src


CASES = {
    # name: (model source or None for the good one, dataset source or None, extra args, words expected)
    "model file missing": ("MISSING", None, [], ["--model", "file not found"]),
    "dataset file missing": (None, "MISSING", [], ["--dataset", "file not found"]),
    "model file does not import": ("import torch\ndef broken(:\n", None, [],
                                   ["model.py", "importing the model file failed", "SyntaxError"]),
    "no Network": ("import torch\nclass Socket:\n    def criterion(self, p, t): pass\n    def metrics(self, p, t): pass\n", None, [],
                   ["model.py", "no class Network"]),
    "Network not a Module": (model_with(**{"class Network(nn.Module):": "class Network:"}), None, [], ["Network", "torch.nn.Module"]),
    "no Socket": (GOOD_MODEL.split("class Socket")[0], None, [], ["model.py", "no class Socket"]),
    "no DataSet": (None, GOOD_DATASET.replace("class DataSet:", "class Data:"), [], ["dataset.py", "no class DataSet"]),
    "forward returns a tensor": (model_with(**{"return [self.body(x + 0.0 * self.frozen(x))]": "return self.body(x)"}), None, [],
                                 ["Network.forward", "expected a non-empty list"]),
    "getitem returns tensors not lists": (None, GOOD_DATASET.replace("return [self.index.x[j]], [self.index.y[j]]",
                                                                     "return self.index.x[j], self.index.y[j]"),
                                          [], ["DataSet.__getitem__", "expected a list"]),
    "getitem returns one thing": (None, GOOD_DATASET.replace("return [self.index.x[j]], [self.index.y[j]]", "return [self.index.x[j]]"),
                                  [], ["DataSet.__getitem__", "expected a pair"]),
    "criterion not a scalar": (model_with(**{"return nn.functional.cross_entropy(preds[0], targets[0])":
                                             "return nn.functional.cross_entropy(preds[0], targets[0], reduction='none')"}), None, [],
                               ["Socket.criterion", "expected a scalar tensor"]),
    "criterion returns a float": (model_with(**{"return nn.functional.cross_entropy(preds[0], targets[0])":
                                                "return 1.0"}), None, [], ["Socket.criterion", "expected a scalar tensor"]),
    "shapes do not match (error)": (model_with(**{"nn.Linear(16, 3)": "nn.Linear(16, 5)",
                                                  "return nn.functional.cross_entropy(preds[0], targets[0])":
                                                  "return nn.functional.mse_loss(preds[0], "
                                                  "targets[0].float().unsqueeze(0).expand(3, -1))"}),
                                    None, [], ["Socket.criterion", "(32, 5)", "(32,)"]),
    "shapes do not match (broadcast)": (model_with(**{"return nn.functional.cross_entropy(preds[0], targets[0])":
                                                      "return nn.functional.mse_loss(preds[0], targets[0].float().unsqueeze(1))"}),
                                        None, [], ["Socket.criterion", "do not match", "(32, 3)", "(32,)"]),
    "metrics not numbers": (model_with(**{'return {"accuracy": correct.mean(), "first_class": (targets[0] == 0).float().mean().item()}':
                                          'return {"accuracy": "high"}'}), None, [], ["Socket.metrics", "accuracy", "expected a number"]),
    "no trainable_modules": (model_with(**{"self.trainable_modules = nn.ModuleList([model.body])": "pass"}), None, [],
                             ["Socket.trainable_modules", "ModuleList"]),
    "network init raises": (model_with(**{"super().__init__()": "super().__init__(); raise ValueError('no GPU here')"}), None, [],
                            ["Network.__init__", "ValueError", "no GPU here"]),
    "dataset index raises": (None, GOOD_DATASET.replace("rng = np.random.RandomState(1234)", "raise FileNotFoundError('where is it')"),
                             [], ["DataSetIndex.__init__", "FileNotFoundError"]),
    "empty train split": (None, GOOD_DATASET.replace('"train": 64', '"train": 0'), [], ["DataSet(mode='train')", "no samples"]),
    "unknown monitor": (None, None, ["--monitor", "valid/f1"], ["--monitor", "valid/f1", "valid/accuracy"]),
    "monitor malformed": (None, None, ["--monitor", "f1"], ["--monitor", "train/NAME"]),
    "epochs zero": (None, None, ["--epochs", "0"], ["--epochs", ">= 1"]),
    "unknown optimizer": (None, None, ["--optimizer", "lion"], ["--optimizer", "lion"]),
    "not a number": (None, None, ["--lr", "fast"], ["--lr", "fast"]),
    "unknown flag": (None, None, ["--learning-rate", "3"], ["--learning-rate"]),
    "--set unknown key": (None, None, ["--set", "learning_rate=3"], ["--set", "unknown setting 'learning_rate'", "lr,"]),
    "--set wrong type": (None, None, ["--set", "epochs=many"], ["--set", "epochs = 'many'", "expected int"]),
    "--set without =": (None, None, ["--set", "lr"], ["--set", "expected KEY=VALUE"]),
    "--set unknown model setting": (None, None, ["--set", "model.n_filters=3"], ["model.n_filters", "unknown setting", "Network"]),
    "--set model setting of the wrong type": (model_with(**{"def __init__(self):": "def __init__(self, width=16):"}), None,
                                              ["--set", "model.width=wide"], ["model.width", "expected a int", "16"]),
    "--set bad lr_schedule": (None, None, ["--set", "lr_schedule=[[3, -1]]"], ["lr_schedule", "not a schedule"]),
    "--config missing": (None, None, ["--config", "/nonexistent/c.yaml"], ["--config", "file not found"]),
    "--nan-policy unknown": (None, None, ["--nan-policy", "ignore"], ["--nan-policy", "ignore"]),
    "items of ragged shape": (None, GOOD_DATASET.replace("return [self.index.x[j]], [self.index.y[j]]",
                                                         "return [self.index.x[j][: 2 + i % 2]], [self.index.y[j]]"),
                              [], ["DataSet.__getitem__", "cannot batch items"]),
    "items with changing list lengths": (None, GOOD_DATASET.replace("return [self.index.x[j]], [self.index.y[j]]",
                                                                    "return [self.index.x[j]] * (1 + i % 2), [self.index.y[j]]"),
                                         [], ["DataSet.__getitem__", "different list lengths"]),
    "cuda asked for, none here": (None, None, ["--device", "cuda"], ["--device cuda", "no CUDA device"]),
    # every number finite and in its range, every name one a file system takes
    "--weight-decay nan": (None, None, ["--weight-decay", "nan"], ["--weight-decay", "finite number >= 0", "nan"]),
    "--weight-decay negative": (None, None, ["--weight-decay", "-0.1"], ["--weight-decay", ">= 0"]),
    "--lr inf": (None, None, ["--lr", "inf"], ["--lr", "finite number > 0", "inf"]),
    "--momentum -5": (None, None, ["--momentum", "-5"], ["--momentum", ">= 0 and < 1", "-5"]),
    "--momentum 1": (None, None, ["--momentum", "1"], ["--momentum", ">= 0 and < 1"]),
    "--clip-grad 0": (None, None, ["--clip-grad", "0"], ["--clip-grad", "> 0"]),
    "--seed beyond 64 bits": (None, None, ["--seed", str(2**64)], ["--seed", "< 2**63", str(2**64)]),
    "--seed negative": (None, None, ["--seed", "-1"], ["--seed", ">= 0"]),
    "--dist-timeout nan": (None, None, ["--dist-timeout", "nan"], ["--dist-timeout", "finite number > 0"]),
    "--dist-timeout -5": (None, None, ["--dist-timeout", "-5"], ["--dist-timeout", "> 0", "-5"]),
    "--master-port 70000": (None, None, ["--master-port", "70000"], ["--master-port", "< 65536"]),
    "--workers -1": (None, None, ["--workers", "-1"], ["--workers", ">= 0"]),
    "--set warmup_epochs=-1": (None, None, ["--set", "warmup_epochs=-1"], ["--set warmup_epochs", ">= 0"]),
    "--set lr_schedule with inf": (None, None, ["--set", "lr_schedule=[[3, 1e999]]"], ["lr_schedule", "finite LR"]),
    "--name of 300 characters": (None, None, ["--name", "n" * 300], ["--name", "300 bytes", "at most 255"]),
    "--name with a NUL byte": (None, None, ["--name", "a\x00b"], ["--name", "'a\\x00b'", "control character"]),
    "--name with a newline": (None, None, ["--name", "a\nb"], ["--name", "'a\\nb'", "control character"]),
    "--name with a slash": (None, None, ["--name", "a/b"], ["--name", "'a/b'"]),
    "--run-root with a control character": (None, None, ["--run-root", "runs\x1b[2J"], ["--run-root", "control character"]),
    "--run-root empty": (None, None, ["--run-root", ""], ["--run-root", "use . for the current one"]),
    # --KEY=VALUE is --set KEY=VALUE
    "--KEY=VALUE unknown key": (None, None, ["--learning_rate=3"], ["--learning_rate", "unknown setting 'learning_rate'", "lr,"]),
    "--KEY=VALUE wrong type": (None, None, ["--warmup_epochs=many"], ["warmup_epochs = 'many'", "expected int"]),
    "--model.NAME=VALUE unknown": (None, None, ["--model.n_filters=3"], ["model.n_filters", "unknown setting", "Network"]),
}


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert main(base_args(root, "old", "--epochs", "1")) == 0
    return root


def write_files(tmp_path, model_src, dataset_src):
    paths = []
    for src, good, name in ((model_src, MODEL, "model.py"), (dataset_src, DATASET, "dataset.py")):
        if src is None:
            paths.append(good)
        elif src == "MISSING":
            paths.append(str(tmp_path / f"missing_{name}"))
        else:
            (tmp_path / name).write_text(textwrap.dedent(src))
            paths.append(str(tmp_path / name))
    return paths


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mode", ["--overwrite", "--resume"])
def test_bad_input_one_line_exit_2_run_dir_unchanged(case, mode, tmp_path, existing_run, capsys):
    model_src, dataset_src, extra, words = CASES[case]
    model, dataset = write_files(tmp_path, model_src, dataset_src)
    before = snapshot(existing_run)
    code = main(base_args(existing_run, "old", mode, "--epochs", "2", *extra, model=model, dataset=dataset))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    for word in words:
        assert word in err[0], (word, err[0])
    assert snapshot(existing_run) == before


def test_debug_shows_the_traceback(tmp_path, capsys):
    model, dataset = write_files(tmp_path, CASES["forward returns a tensor"][0], None)
    assert main(base_args(tmp_path, "d", "--debug", model=model, dataset=dataset)) == 2
    assert "Traceback" in capsys.readouterr().err


def test_resume_without_a_checkpoint(tmp_path, capsys):
    assert main(base_args(tmp_path, "nothing", "--resume")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume: no checkpoint" in err[0]


NAN_AT_STEP_5 = model_with(**{
    "return nn.functional.cross_entropy(preds[0], targets[0])":
    "self.steps = getattr(self, 'steps', 0) + self.model.training  # counts training steps only\n"
    "        loss = nn.functional.cross_entropy(preds[0], targets[0])\n"
    "        return loss * float('nan') if self.model.training and self.steps == 5 else loss",
})


def test_nan_loss_stops_naming_epoch_and_step_and_writes_no_nan_checkpoint(tmp_path):
    (tmp_path / "model.py").write_text(NAN_AT_STEP_5)
    # batch 16: 4 steps per epoch, so step 5 is in epoch 2, after epoch 1's checkpoint.
    out = scorch_train(base_args(tmp_path, "nan", "--epochs", "3", "--batch-size", "16", model=str(tmp_path / "model.py")))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2
    assert "epoch 2, step 5" in lines[-1] and "nan" in lines[-1]
    ckpt = torch.load(tmp_path / "nan" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert not math.isnan(ckpt["loop"]["best"])


def test_horovod_backend_without_horovod_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "horovod", None)  # as if Horovod were not installed
    monkeypatch.setitem(sys.modules, "horovod.torch", None)
    assert main(base_args(tmp_path, "h", "--backend", "horovod")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Horovod" in err[0] and "make setup-horovod" in err[0]


def test_console_script_bad_input(tmp_path):
    out = scorch_train(["--model", str(tmp_path / "nope.py"), "--dataset", DATASET, "--run-root", str(tmp_path)])
    assert out.returncode == 2
    missing = tmp_path / "nope.py"
    assert out.stderr.strip().splitlines() == [f"scorch-train: error: --model: file not found: '{missing}' (expected a Python file)"]
    assert not any(tmp_path.iterdir())
