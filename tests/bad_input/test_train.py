"""scorch-train's bad input: flags, settings, config files, the user's files, run directories and data.

Each case runs in-process against its own copy of an existing run (``old``, trained one epoch) with
``--overwrite`` and with ``--resume`` (or as its row says), and must leave that run, and everything
else it could touch, byte for byte as it was. The exception, stated in the README: a resumed run
that fails while it trains (a sample that raises, a NaN loss) has recorded its session (meta.json,
log.txt, config.json, a TensorBoard file, a copy of its files); its checkpoints and history stay as
they were.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from scorch.cli.train import main
from scorch.rundir import checksum
from tests.bad_input.harness import TMP, Case, run_in_process
from tests.bad_input.sources import (
    CRITERION,
    FORWARD,
    GOOD_DATASET,
    GOOD_MODEL,
    METRICS,
    NAN_AT_STEP_5,
    RAISES_AT_40,
    TRAINABLE,
    dataset_with,
    item,
    model_plus,
    model_with,
)
from tests.helpers import DATASET, MODEL, base_args, scorch_train

MODES = ("--overwrite", "--resume")
NEW = ("new",)  # a run name with nothing there: nothing may be created
AS_GIVEN = ("as given",)  # the row's arguments alone (@model, @dataset, @root: the files, the run root)
MISSING = "MISSING"


@dataclass(frozen=True)
class Train:
    case: Case
    model: str | None  # the model file's source; None: the good one; MISSING: no file
    dataset: str | None
    modes: tuple[str, ...]
    training: bool  # fails while it trains (after the run's files were opened)
    damage: Callable[[Path], object] | None  # done to the copy of the run ``old`` first


def T(extra: list[str], *words: str, model: str | None = None, dataset: str | None = None, code: int = 2,
      modes: tuple[str, ...] = MODES, files: dict[str, str | bytes] | None = None, training: bool = False,
      damage: Callable[[Path], object] | None = None, absent: tuple[str, ...] = ()) -> Train:
    return Train(Case(extra, *words, code=code, files=files, absent=absent), model, dataset, modes, training, damage)


def D(damage: Callable[[Path], object], *words: str, absent: tuple[str, ...] = ()) -> Train:
    """``--resume`` of the run ``old`` after ``damage(run directory)``."""
    return T([], *words, modes=("--resume",), damage=damage, absent=absent)


def edit_checkpoint(run: Path, change: Callable[[dict], object]) -> None:
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    change(state)
    if checksum.KEY in state:  # damage as scorch would have written it, so the check under test is reached
        state[checksum.KEY] = checksum.digest(state)
    torch.save(state, path)


def replace_with_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "x").write_text("")


class Payload:
    """Runs a command when unpickled: a checkpoint must never do that."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("touch pwned",))


def edit_json(path: Path, change: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# What a resumed run that fails while it trains has written: the record of its session (and a copy of a
# model or dataset file of another name than the run's first).
SESSION_RECORD = tuple(f"runs/old/{name}" for name in ("meta.json", "log.txt", "config.json", "tensorboard", "model.py",
                                                      "dataset.py"))


def snippet(code: str) -> str:
    return f"import torch\nfrom torch import nn\n{code}\n"


SOCKET_OK = ("class Socket:\n    def __init__(self, model):\n        self.trainable_modules = nn.ModuleList([model])\n"
             "    def criterion(self, p, t):\n        return p[0].sum()\n    def metrics(self, p, t):\n        return {}\n")
WIDTH = model_with(**{"def __init__(self):": "def __init__(self, width=16):"})
BRANCH_LATER = model_with(**{  # the head gets no gradient from step 3 on
    FORWARD: "self.calls = getattr(self, 'calls', 0) + 1\n        out = self.body(x + 0.0 * self.frozen(x))\n"
             "        return [out if self.calls < 3 else out.detach() * 0 + self.body[0].weight.sum()]"})
VALID_NAN = model_with(**{CRITERION: "loss = nn.functional.cross_entropy(preds[0], targets[0])\n"  # the last valid batch (5)
                                     "        return loss * float('nan') if preds[0].shape[0] == 5 else loss"})
NAN_AT_STEP_2 = model_with(**{CRITERION: "self.steps = getattr(self, 'steps', 0) + self.model.training\n"
                                         "        loss = nn.functional.cross_entropy(preds[0], targets[0])\n"
                                         "        return loss * float('nan') if self.model.training and self.steps == 2 else loss"})

CASES: dict[str, Train] = {
    # ---- the user's files ------------------------------------------------------------------------
    "model file missing": T([], "--model", "file not found", model=MISSING),
    "dataset file missing": T([], "--dataset", "file not found", dataset=MISSING),
    "model file is a directory": T(["--model", TMP], "--model", "directory", "expected a Python file"),
    "dataset file is a directory": T(["--dataset", TMP], "--dataset", "directory", "expected a Python file"),
    "model file does not import": T([], "model.py", "importing the model file failed", "SyntaxError",
                                    model="import torch\ndef broken(:\n"),
    "model file is binary": T([], "model.py", "importing the model file failed", model="\x00\x01\x02 binary\n"),
    "model file is empty": T([], "model.py", "no class Network", model=""),
    "model file raises on import": T([], "model.py", "importing the model file failed", "RuntimeError", "no GPU",
                                     model="raise RuntimeError('no GPU')\n"),
    "model file imports what is not there": T([], "model.py", "ModuleNotFoundError", "not_a_module",
                                              model="import not_a_module\n"),
    "model file calls sys.exit(0)": T([], "model.py", "sys.exit(0)", "if __name__ == '__main__'",
                                      model="import sys\nsys.exit(0)\n"),
    "model file calls exit('bye')": T([], "model.py", "sys.exit('bye')", model="exit('bye')\n"),
    "model file raises SystemExit(3)": T([], "model.py", "sys.exit(3)", model=GOOD_MODEL + "\nraise SystemExit(3)\n"),
    "dataset file calls sys.exit(1)": T([], "dataset.py", "sys.exit(1)", dataset="import sys\nsys.exit(1)\n"),
    "no Network": T([], "model.py", "no class Network",
                    model="import torch\nclass Socket:\n    def criterion(self, p, t): pass\n    def metrics(self, p, t): pass\n"),
    "Network not a Module": T([], "Network", "torch.nn.Module", model=model_with(**{"class Network(nn.Module):": "class Network:"})),
    "Network is a number": T([], "Network is a int", "torch.nn.Module", model=snippet("Network = 3\n" + SOCKET_OK)),
    "no Socket": T([], "model.py", "no class Socket", model=GOOD_MODEL.split("class Socket")[0]),
    "Socket without metrics": T([], "Socket has no method metrics", model=GOOD_MODEL.split("    def metrics")[0]),
    "Socket.criterion not callable": T([], "Socket has no method criterion",
                                       model=model_with(**{"    def criterion(self, preds, targets):\n        " + CRITERION:
                                                           "    criterion = 3"})),
    "Network.__init__ raises": T([], "Network.__init__", "ValueError", "no GPU here",
                                 model=model_with(**{"super().__init__()": "super().__init__(); raise ValueError('no GPU here')"})),
    "Network.__init__ wants an argument": T([], "Network.__init__", "TypeError",
                                            model=model_with(**{"def __init__(self):": "def __init__(self, width):"})),
    "Network.__init__ calls sys.exit": T([], "Network.__init__", "SystemExit",
                                         model=model_with(**{"super().__init__()": "super().__init__(); import sys; sys.exit(0)"})),
    "Socket.__init__ raises": T([], "Socket.__init__", "KeyError",
                                model=model_with(**{TRAINABLE: "self.trainable_modules = {}['head']"})),
    "no trainable_modules": T([], "Socket.trainable_modules", "ModuleList", model=model_with(**{TRAINABLE: "pass"})),
    "trainable_modules = [1, 2]": T([], "Socket.trainable_modules holds a int", "ModuleList",
                                    model=model_with(**{TRAINABLE: "self.trainable_modules = [1, 2]"})),
    "trainable_modules a module": T([], "Socket.trainable_modules is Sequential", "ModuleList",
                                    model=model_with(**{TRAINABLE: "self.trainable_modules = model.body"})),
    "trainable_modules empty": T([], "Socket.trainable_modules has no parameters",
                                 model=model_with(**{TRAINABLE: "self.trainable_modules = nn.ModuleList()"})),
    "trainable_modules not the Network's": T([], "Socket.trainable_modules", "not the Network's",
                                             model=model_with(**{TRAINABLE: "self.trainable_modules = nn.ModuleList([nn.Linear(2, 2)])"})),
    "forward returns a tensor": T([], "Network.forward", "expected a non-empty list",
                                  model=model_with(**{FORWARD: "return self.body(x)"})),
    "forward returns None": T([], "Network.forward", "NoneType", "expected a non-empty list",
                              model=model_with(**{FORWARD: "return None"})),
    "forward returns []": T([], "Network.forward", "list of 0", model=model_with(**{FORWARD: "return []"})),
    "forward returns a dict": T([], "Network.forward", "dict", model=model_with(**{FORWARD: "return {'y': self.body(x)}"})),
    "forward returns a string in the list": T([], "Network.forward", "str at position 1", "expected a tensor",
                                              model=model_with(**{FORWARD: "return [self.body(x), 'y']"})),
    "forward raises": T([], "Network.forward raised", "ZeroDivisionError", model=model_with(**{FORWARD: "return [1 / 0]"})),
    "forward of the wrong width": T([], "Network.forward raised RuntimeError", "mat1 and mat2",
                                    model=model_with(**{"nn.Linear(4, 16)": "nn.Linear(5, 16)", "self.frozen(x)": "0"})),
    "criterion not a scalar": T([], "Socket.criterion", "expected a scalar tensor",
                                model=model_with(**{CRITERION: CRITERION.replace("])", "], reduction='none')")})),
    "criterion returns a float": T([], "Socket.criterion", "expected a scalar tensor", model=model_with(**{CRITERION: "return 1.0"})),
    "criterion returns None": T([], "Socket.criterion", "NoneType", model=model_with(**{CRITERION: "return None"})),
    "criterion returns an integer tensor": T([], "Socket.criterion", "floating-point scalar",
                                             model=model_with(**{CRITERION: "return targets[0].sum()"})),
    "criterion is NaN on the first batch": T([], "Socket.criterion", "nan", "finite",
                                             model=model_with(**{CRITERION: "return preds[0].sum() * float('nan')"})),
    "criterion raises": T([], "Socket.criterion", "raised ValueError", "bad target",
                          model=model_with(**{CRITERION: "raise ValueError('bad target')"})),
    "criterion without gradient": T([], "Socket.criterion", "without a gradient",
                                    model=model_with(**{CRITERION: CRITERION + ".detach()"})),
    "shapes do not match (error)": T([], "Socket.criterion", "(32, 5)", "(32,)",
                                     model=model_with(**{"nn.Linear(16, 3)": "nn.Linear(16, 5)",
                                                         CRITERION: "return nn.functional.mse_loss(preds[0], "
                                                                    "targets[0].float().unsqueeze(0).expand(3, -1))"})),
    "shapes do not match (broadcast)": T([], "Socket.criterion", "do not match", "(32, 3)", "(32,)",
                                         model=model_with(**{CRITERION: "return nn.functional.mse_loss(preds[0], "
                                                                        "targets[0].float().unsqueeze(1))"})),
    "metrics not numbers": T([], "Socket.metrics", "accuracy", "expected a number",
                             model=model_with(**{METRICS: 'return {"accuracy": "high"}'})),
    "metrics a string": T([], "Socket.metrics", "returned str", "expected a dict", model=model_with(**{METRICS: "return 'accuracy'"})),
    "metric name with a slash": T([], "Socket.metrics", "'a/b'", "without '/'", model=model_with(**{METRICS: "return {'a/b': 1.0}"})),
    "metric of several values": T([], "Socket.metrics", "'acc'", "expected a number",
                                  model=model_with(**{METRICS: "return {'acc': correct}"})),
    "metrics raise": T([], "Socket.metrics", "raised IndexError", model=model_with(**{METRICS: "return {'a': preds[5]}"})),
    "metrics differ between batches": T([], "Socket.metrics returned ['n5']", "expected the same names", "['n32']",
                                        model=model_with(**{METRICS: "return {'n%d' % preds[0].shape[0]: 1.0}"}), training=True),
    "optimizer hook returns a string": T([], "Socket.optimizer", "expected a torch.optim.Optimizer",
                                         model=model_plus("\n    def optimizer(self, params):\n        return 'adam'\n")),
    "optimizer hook raises": T([], "Socket.optimizer raised", "RuntimeError", "no optimizer",
                               model=model_plus("\n    def optimizer(self, params):\n        raise RuntimeError('no optimizer')\n")),
    "scheduler hook returns a number": T([], "Socket.scheduler", "expected an LR scheduler",
                                         model=model_plus("\n    def scheduler(self, optimizer):\n        return 3\n")),
    "--set model setting unknown": T(["--set", "model.n_filters=3"], "model.n_filters", "unknown setting", "Network"),
    "--set model setting of the wrong type": T(["--set", "model.width=wide"], "model.width", "expected a int", "16", model=WIDTH),
    "--set model setting as code": T(["--set", "model.width=__import__('os').system('touch pwned')"], "model.width",
                                     "expected a int", model=WIDTH),
    "--set model setting a list for a number": T(["--model.width=[1, 2]"], "model.width", "expected a int", model=WIDTH),
    "--set model setting of a CONFIG dict": T(["--set", "model.depth=3"], "model.depth", "unknown setting", "model.width",
                                              model=GOOD_MODEL + "\nCONFIG = {'width': 16}\n"),
    "--set dataset setting unknown": T(["--set", "dataset.size=10"], "dataset.size", "unknown setting", "DataSetIndex"),
    "--set dataset setting of the wrong type": T(["--set", "dataset.seed=1.5"], "dataset.seed", "expected a int", "1234",
                                                 dataset=dataset_with(**{"def __init__(self, path=None):":
                                                                         "def __init__(self, path=None, seed=1234):"})),
    "--set model. with no name": T(["--model.=3"], "model.", "unknown setting"),
    # ---- the dataset and its samples ---------------------------------------------------------------
    "no DataSet": T([], "dataset.py", "no class DataSet", dataset=GOOD_DATASET.replace("class DataSet:", "class Data:")),
    "DataSet without __getitem__": T([], "dataset.py", "DataSet has no method __getitem__",
                                     dataset=GOOD_DATASET.split("    def __getitem__")[0]),
    "DataSetIndex raises": T([], "DataSetIndex.__init__", "FileNotFoundError",
                             dataset=dataset_with(**{"rng = np.random.RandomState(1234)": "raise FileNotFoundError('where is it')"})),
    "DataSetIndex calls sys.exit": T([], "DataSetIndex.__init__", "SystemExit",
                                     dataset=dataset_with(**{"rng = np.random.RandomState(1234)": "import sys; sys.exit(2)"})),
    "DataSet.__init__ raises": T([], "DataSet.__init__(mode='train')", "KeyError",
                                 dataset=dataset_with(**{"ds_index.ranges[mode]": "ds_index.ranges['training']"})),
    "DataSet.__len__ negative": T([], "DataSet.__len__ (mode='train')", "should return >= 0",
                                  dataset=dataset_with(**{"return len(self.ids)": "return -1"})),
    "DataSet.__len__ a string": T([], "DataSet.__len__ (mode='train')", "TypeError",
                                  dataset=dataset_with(**{"return len(self.ids)": "return 'many'"})),
    "empty train split": T([], "DataSet(mode='train')", "no samples", dataset=GOOD_DATASET.replace('"train": 64', '"train": 0')),
    "getitem returns tensors not lists": T([], "DataSet.__getitem__", "expected a list", dataset=item("self.index.x[j], self.index.y[j]")),
    "getitem returns one thing": T([], "DataSet.__getitem__", "expected a pair", dataset=item("[self.index.x[j]]")),
    "getitem returns None": T([], "DataSet.__getitem__", "NoneType", "expected a pair", dataset=item("None")),
    "getitem returns a dict": T([], "DataSet.__getitem__", "dict", "expected a pair", dataset=item("{'x': self.index.x[j]}")),
    "getitem returns strings as inputs": T([], "DataSet.__getitem__ (mode='train')", "str values at inputs position 0",
                                           dataset=item("['text'], [self.index.y[j]]")),
    "getitem returns strings as targets": T([], "DataSet.__getitem__ (mode='train')", "str values at targets position 0",
                                            dataset=item("[self.index.x[j]], ['cat']")),
    "getitem returns mixed dtypes": T([], "DataSet.__getitem__ (mode='train')", "float32 tensor and float64 tensor",
                                      "inputs position 0", "one dtype per position",
                                      dataset=item("[self.index.x[j] if i % 2 else self.index.x[j].double()], [self.index.y[j]]")),
    "getitem returns None inside the lists": T([], "DataSet.__getitem__ (mode='train')", "NoneType",
                                               dataset=item("[None], [self.index.y[j]]")),
    "items of ragged shape": T([], "DataSet.__getitem__", "inputs of different shapes at position 0", "[2] (sample",
                               "[3] (sample", "one shape per position",
                               dataset=item("[self.index.x[j][: 2 + i % 2]], [self.index.y[j]]")),
    # the same line from a DataLoader worker (torch's own there: "Trying to resize storage", with the worker's traceback)
    "items of ragged shape, --workers 2": T(["--workers", "2"], "DataSet.__getitem__", "inputs of different shapes at position 0",
                                            "[2] (sample", "[3] (sample", "one shape per position",
                                            dataset=item("[self.index.x[j][: 2 + i % 2]], [self.index.y[j]]")),
    "items with changing list lengths": T([], "DataSet.__getitem__", "different list lengths",
                                          dataset=item("[self.index.x[j]] * (1 + i % 2), [self.index.y[j]]")),
    "getitem raises on the first item": T([], "DataSet.__getitem__ (mode='train')", "index 0", "IndexError",
                                          dataset=item("[self.index.x[j]], [self.index.y[j]][i + 1]")),
    "getitem raises on a valid item": T([], "DataSet.__getitem__ (mode='valid')", "OSError",
                                        dataset=dataset_with(**{"        j = self.ids[i]\n": "        j = self.ids[i]\n"
                                                                "        if j >= 64:\n            raise OSError('no disk')\n"})),
    "a sample raises in epoch 1": T([], "DataSet.__getitem__ (mode='train')", "OSError: bad sector (sample 40)", dataset=RAISES_AT_40,
                                    training=True),
    "a sample raises in a worker": T(["--workers", "2"], "DataSet.__getitem__ (mode='train')", "OSError: bad sector (sample 40)",
                                     dataset=RAISES_AT_40, training=True),
    "the loss turns NaN at step 2": T(["--batch-size", "16"], "the loss is nan", "epoch", "no checkpoint is written",
                                      model=NAN_AT_STEP_2, training=True),
    "valid/loss is NaN": T([], "valid/loss is nan at epoch", "--nan-policy skip", model=VALID_NAN, training=True),
    # ---- flags and their values ---------------------------------------------------------------------
    "unknown monitor": T(["--monitor", "valid/f1"], "--monitor", "valid/f1", "valid/accuracy"),
    "monitor malformed": T(["--monitor", "f1"], "--monitor", "train/NAME"),
    "monitor of another split": T(["--monitor", "test/loss"], "--monitor", "train/NAME or valid/NAME"),
    "monitor without a metric": T(["--monitor", "valid/"], "--monitor", "train/NAME"),
    "monitor with a newline": T(["--monitor", "valid/a\nb"], "--monitor", "'valid/a\\nb'"),
    "--monitor-mode up": T(["--monitor-mode", "up"], "--monitor-mode", "invalid choice: 'up'"),
    "epochs zero": T(["--epochs", "0"], "--epochs", ">= 1"),
    "epochs negative": T(["--epochs", "-1"], "--epochs", ">= 1", "-1"),
    "epochs a fraction": T(["--epochs", "2.5"], "--epochs", "invalid int value: '2.5'"),
    "--batch-size 0": T(["--batch-size", "0"], "--batch-size", ">= 1"),
    "--batch-size many": T(["--batch-size", "many"], "--batch-size", "invalid int value"),
    "unknown optimizer": T(["--optimizer", "lion"], "--optimizer", "lion"),
    "optimizer in capitals": T(["--optimizer", "ADAM"], "--optimizer", "'ADAM'", "adam"),
    "optimizer empty": T(["--optimizer", ""], "--optimizer", "invalid choice: ''"),
    "not a number": T(["--lr", "fast"], "--lr", "fast"),
    "--lr 0": T(["--lr", "0"], "--lr", "finite number > 0", "0.0"),
    "--lr -1": T(["--lr", "-1"], "--lr", "> 0"),
    "--lr nan": T(["--lr", "nan"], "--lr", "finite number > 0", "nan"),
    "--lr inf": T(["--lr", "inf"], "--lr", "finite number > 0", "inf"),
    "--lr -inf": T(["--lr=-inf"], "--lr", "finite", "-inf"),
    "--lr 1e400": T(["--lr", "1e400"], "--lr", "finite number > 0", "inf"),
    "--weight-decay nan": T(["--weight-decay", "nan"], "--weight-decay", "finite number >= 0", "nan"),
    "--weight-decay negative": T(["--weight-decay", "-0.1"], "--weight-decay", ">= 0"),
    "--weight-decay inf": T(["--weight-decay", "inf"], "--weight-decay", "finite"),
    "--momentum -5": T(["--momentum", "-5"], "--momentum", ">= 0 and < 1", "-5"),
    "--momentum 1": T(["--momentum", "1"], "--momentum", ">= 0 and < 1"),
    "--momentum nan": T(["--momentum", "nan"], "--momentum", "finite"),
    "--momentum with adam": T(["--optimizer", "adam", "--momentum", "0.5"], "--momentum", "adam has no momentum",
                              "--optimizer sgd"),
    "--lr under a list schedule, on resume": T(["--set", "lr_schedule=[[1, 0.1], [9, 0.01]]", "--lr", "0.5"], "--lr",
                                               "absolute rates", "lr_schedule", modes=("--resume",)),
    "--clip-grad 0": T(["--clip-grad", "0"], "--clip-grad", "> 0"),
    "--clip-grad -1": T(["--clip-grad", "-1"], "--clip-grad", "> 0"),
    "--clip-grad nan": T(["--clip-grad", "nan"], "--clip-grad", "finite"),
    "--seed beyond 64 bits": T(["--seed", str(2**64)], "--seed", "< 2**63", str(2**64)),
    "--seed 2**63": T(["--seed", str(2**63)], "--seed", "< 2**63"),
    "--seed negative": T(["--seed", "-1"], "--seed", ">= 0"),
    "--seed a fraction": T(["--seed", "1.5"], "--seed", "invalid int value"),
    "--workers -1": T(["--workers", "-1"], "--workers", ">= 0"),
    "--workers many": T(["--workers", "many"], "--workers", "invalid int value"),
    "--workers 100000": T(["--workers", "100000"], "--workers", "< 257", "100000"),
    "--accumulate 0": T(["--accumulate", "0"], "--accumulate", ">= 1"),
    "--patience 0": T(["--patience", "0"], "--patience", ">= 1"),
    "--keep-checkpoints 0": T(["--keep-checkpoints", "0"], "--keep-checkpoints", ">= 1"),
    "--nan-policy unknown": T(["--nan-policy", "ignore"], "--nan-policy", "ignore"),
    "--backend mpi": T(["--backend", "mpi"], "--backend", "invalid choice: 'mpi'"),
    "--device tpu": T(["--device", "tpu"], "--device", "invalid choice: 'tpu'"),
    "--amp fp8": T(["--amp", "fp8"], "--amp", "invalid choice: 'fp8'"),
    "cuda asked for, none here": T(["--device", "cuda"], "--device cuda", "no CUDA device"),
    "--dist-timeout nan": T(["--dist-timeout", "nan"], "--dist-timeout", "finite number > 0"),
    "--dist-timeout -5": T(["--dist-timeout", "-5"], "--dist-timeout", "> 0", "-5"),
    "--dist-timeout 0": T(["--dist-timeout", "0"], "--dist-timeout", "> 0"),
    "--dist-timeout 1e10": T(["--dist-timeout", "1e10"], "--dist-timeout", "< 1e+09"),
    "--join-timeout -1": T(["--join-timeout", "-1"], "--join-timeout", "> 0"),
    "--master-port 70000": T(["--master-port", "70000"], "--master-port", "< 65536"),
    "--master-port 0": T(["--master-port", "0"], "--master-port", ">= 1"),
    "--master-addr empty": T(["--master-addr", ""], "--master-addr", "expected a host name or address"),
    "--master-addr with a space": T(["--master-addr", "node 1"], "--master-addr", "'node 1'"),
    "--master-addr with a newline": T(["--master-addr", "node\n1"], "--master-addr", "'node\\n1'"),
    "--nproc-per-node 0": T(["--nproc-per-node", "0"], "--nproc-per-node", ">= 1"),
    "--nnodes 0": T(["--nnodes", "0"], "--nnodes", ">= 1"),
    "--node-rank as large as --nnodes": T(["--nnodes", "2", "--node-rank", "2"], "--node-rank: 2 must be below --nnodes 2"),
    "--node-rank -1": T(["--node-rank", "-1"], "--node-rank", ">= 0"),
    "--max-restarts -1": T(["--max-restarts", "-1"], "--max-restarts", ">= 0"),
    "--model empty": T(["--model", ""], "--model", "expected a file, got ''"),
    "--dataset empty": T(["--dataset", ""], "--dataset", "expected a file, got ''"),
    "unknown flag": T(["--learning-rate", "3"], "--learning-rate"),
    "a stray argument": T(["extra"], "unrecognized arguments: extra"),
    "an unknown short flag": T(["-x"], "unrecognized arguments: -x"),
    "a flag without its value": T(["--epochs"], "--epochs", "expected one argument"),
    # ---- names -------------------------------------------------------------------------------------
    "--name of 300 characters": T(["--name", "n" * 300], "--name", "300 bytes", "at most 255"),
    "--name of 256 bytes in 128 characters": T(["--name", "é" * 128], "--name", "256 bytes", "at most 255"),
    "--name with a NUL byte": T(["--name", "a\x00b"], "--name", "'a\\x00b'", "control character"),
    "--name with a newline": T(["--name", "a\nb"], "--name", "'a\\nb'", "control character"),
    "--name with a tab": T(["--name", "a\tb"], "--name", "'a\\tb'", "control character"),
    "--name with an escape sequence": T(["--name", "a\x1b[2Jb"], "--name", "control character"),
    "--name with DEL": T(["--name", "a\x7fb"], "--name", "control character"),
    "--name with a C1 control": T(["--name", "a\x85b"], "--name", "control character"),
    "--name with a slash": T(["--name", "a/b"], "--name", "'a/b'"),
    "--name empty": T(["--name", ""], "--name", "''", "not a valid directory name"),
    "--name .": T(["--name", "."], "--name", "'.'", "not a valid directory name"),
    "--name ..": T(["--name", ".."], "--name", "'..'", "not a valid directory name"),
    "--run-root with a control character": T(["--run-root", "runs\x1b[2J"], "--run-root", "control character"),
    "--run-root empty": T(["--run-root", ""], "--run-root", "use . for the current one"),
    "--run-root with a newline": T(["--run-root", f"{TMP}/a\nb"], "--run-root", "control character"),
    "--run-root with a part of 300 bytes": T(["--run-root", f"{TMP}/{'r' * 300}"], "--run-root", "longer than 255 bytes"),
    # ---- --set, --KEY=VALUE and config files --------------------------------------------------------
    "--set unknown key": T(["--set", "learning_rate=3"], "--set", "unknown setting 'learning_rate'", "did you mean lr?"),
    "--set wrong type": T(["--set", "epochs=many"], "--set", "epochs = 'many'", "expected int"),
    "--set a fraction for an int": T(["--set", "epochs=2.5"], "--set", "epochs = 2.5", "expected int"),
    "--set a bool for a number": T(["--set", "lr=True"], "--set", "lr = True", "expected float"),
    "--set an empty value": T(["--set", "lr="], "--set", "lr = ''", "expected float"),
    "--set a power for the seed": T(["--set", "seed=2**64"], "--set", "seed = '2**64'", "expected int"),
    "--set a word for a flag": T(["--set", "resume=yes"], "--set", "resume = 'yes'", "expected bool"),
    "--set without =": T(["--set", "lr"], "--set", "expected KEY=VALUE"),
    "--set without a key": T(["--set", "=3"], "--set", "expected KEY=VALUE"),
    "--set a name with a slash": T(["--set", "name=a/b"], "--name", "'a/b'"),
    "--set an empty run root": T(["--set", "run_root="], "--run-root", "use . for the current one"),
    "--set bad lr_schedule": T(["--set", "lr_schedule=[[3, -1]]"], "lr_schedule", "not a schedule"),
    "--set lr_schedule with inf": T(["--set", "lr_schedule=[[3, 1e999]]"], "lr_schedule", "finite LR"),
    "--set lr_schedule exponential": T(["--set", "lr_schedule=exponential"], "lr_schedule", "'exponential'", "cosine"),
    "--set lr_schedule empty": T(["--set", "lr_schedule=[]"], "lr_schedule", "not a schedule"),
    "--set lr_schedule with falling epochs": T(["--set", "lr_schedule=[[3, 0.1], [2, 0.01]]"], "lr_schedule", "increasing epochs"),
    "--set lr_schedule with a fractional epoch": T(["--set", "lr_schedule=[[1.5, 0.1]]"], "lr_schedule", "not a schedule"),
    "--set lr_schedule a dict": T(["--set", "lr_schedule={'3': 0.1}"], "lr_schedule", "not a schedule"),
    "--set warmup_epochs=-1": T(["--set", "warmup_epochs=-1"], "--set warmup_epochs", ">= 0"),
    "--set warmup_epochs a fraction": T(["--set", "warmup_epochs=1.5"], "warmup_epochs = 1.5", "expected int"),
    "--set model_settings directly": T(["--set", "model_settings={'a': 1}"], "unknown setting 'model_settings'"),
    "--KEY=VALUE unknown key": T(["--learning_rate=3"], "--learning_rate", "unknown setting 'learning_rate'", "did you mean lr?"),
    "--KEY=VALUE wrong type": T(["--warmup_epochs=many"], "warmup_epochs = 'many'", "expected int"),
    "--model.NAME=VALUE unknown": T(["--model.n_filters=3"], "model.n_filters", "unknown setting", "Network"),
    "--set unknown model setting": T(["--set", "model.n_filters=3"], "model.n_filters", "unknown setting", "Network"),
    "--config missing": T(["--config", "/nonexistent/c.yaml"], "--config", "file not found"),
    "--config a directory": T(["--config", TMP], "--config", "is a directory"),
    "--config of unknown extension": T(["--config", f"{TMP}/c.ini"], "--config", "unknown extension '.ini'", ".toml",
                                       files={"c.ini": "[x]\n"}),
    "--config not YAML": T(["--config", f"{TMP}/c.yaml"], "--config", "cannot parse it as YAML", files={"c.yaml": "epochs: [1, 2\n"}),
    "--config not JSON": T(["--config", f"{TMP}/c.json"], "--config", "cannot parse it as JSON", files={"c.json": "{'epochs': 3}"}),
    "--config not TOML": T(["--config", f"{TMP}/c.toml"], "--config", "cannot parse it as TOML", files={"c.toml": "epochs = \n"}),
    "--config a list": T(["--config", f"{TMP}/c.json"], "--config", "expected a mapping", "list", files={"c.json": "[1, 2]"}),
    "--config of binary garbage": T(["--config", f"{TMP}/c.yaml"], "--config", "expected a mapping",
                                    files={"c.yaml": b"\xff\xfe\x00garbage"}),
    "--config with a Python tag": T(["--config", f"{TMP}/c.yaml"], "--config", "cannot parse it as YAML",
                                    files={"c.yaml": "epochs: !!python/object/apply:os.system ['touch pwned']\n"}),
    "--config with an unknown key": T(["--config", f"{TMP}/c.toml"], "unknown setting 'epoch'", files={"c.toml": "epoch = 3\n"}),
    "--config with a wrong type": T(["--config", f"{TMP}/c.yaml"], "epochs = 'three'", "expected int",
                                    files={"c.yaml": "epochs: three\n"}),
    "--config with NaN": T(["--config", f"{TMP}/c.json"], "--lr", "finite number > 0", "nan", files={"c.json": '{"lr": NaN}'}),
    "--config with a model section that is no mapping": T(["--config", f"{TMP}/c.yaml"], "model = 3", "expected str",
                                                          files={"c.yaml": "model: 3\n"}),
    "--config with an unknown model setting": T(["--config", f"{TMP}/c.yaml"], "model.depth", "unknown setting",
                                                files={"c.yaml": "model:\n  depth: 3\n"}),
    # ---- --slurm: a job script instead of training ------------------------------------------------------
    "--slurm --time abc": T(["--slurm", "--time", "abc"], "--time", "'abc' is not a SLURM time"),
    "--slurm --mem lots": T(["--slurm", "--mem", "lots"], "--mem", "'lots' is not a SLURM memory"),
    "--slurm --nodes 0": T(["--slurm", "--nodes", "0"], "--nodes", ">= 1"),
    "--slurm --launcher ssh": T(["--slurm", "--launcher", "ssh"], "--launcher", "invalid choice: 'ssh'"),
    "--slurm --nproc-per-node 2": T(["--slurm", "--nproc-per-node", "2"], "--nproc-per-node", "--ntasks-per-node"),
    "--slurm --setup with a newline": T(["--slurm", "--setup", "module load a\nrm -rf ~"], "--setup", "control character"),
    "--slurm --sbatch-arg that is none": T(["--slurm", "--sbatch-arg", "qos=high"], "--sbatch-arg", "not an sbatch option"),
    "--slurm with a model file that does not import": T(["--slurm"], "model.py", "SyntaxError", model="def (:\n"),
    "--slurm with a dataset file that calls exit": T(["--slurm"], "dataset.py", "sys.exit(0)", dataset="exit(0)\n"),
    "--slurm with an unknown model setting": T(["--slurm", "--set", "model.depth=3"], "model.depth", "unknown setting"),
    "--slurm of an existing run": T(["--model", "@model", "--dataset", "@dataset", "--run-root", "@root", "--name", "old",
                                     "--slurm"], "already exists", modes=AS_GIVEN),
    # ---- run directories ---------------------------------------------------------------------------
    "--resume and --overwrite": T(["--resume", "--overwrite"], "--resume and --overwrite contradict", modes=NEW),
    "--auto-resume and --overwrite": T(["--auto-resume", "--overwrite"], "--auto-resume and --overwrite contradict", modes=NEW),
    "--resume without --name": T(["--model", "@model", "--dataset", "@dataset", "--run-root", "@root", "--resume"],
                                 "--resume needs --name", modes=AS_GIVEN),
    "--auto-resume without --name": T(["--model", "@model", "--dataset", "@dataset", "--run-root", "@root", "--auto-resume"],
                                      "--auto-resume needs --name", modes=AS_GIVEN),
    "no --model": T(["--dataset", "@dataset", "--run-root", "@root", "--name", "x"], "--model is required", modes=AS_GIVEN),
    "an existing run without --resume or --overwrite": T(["--model", "@model", "--dataset", "@dataset", "--run-root", "@root",
                                                          "--name", "old"], "already exists", "--resume", "--overwrite",
                                                         modes=AS_GIVEN),
    "--resume of no such run": T(["--dataset", "@dataset", "--run-root", "@root", "--name", "ghost", "--resume"],
                                 "--resume: there is no run", "ghost", modes=AS_GIVEN),
    "--resume of a run without a checkpoint": T(["--resume"], "--resume: no checkpoint", modes=NEW),
    "the run directory is a file": T(["--model", "@model", "--dataset", "@dataset", "--run-root", f"{TMP}/runs", "--name", "f"],
                                     "runs/f exists and is not a directory", files={"runs/f": "mine\n"}, modes=AS_GIVEN),
    "--overwrite of a file": T(["--model", "@model", "--dataset", "@dataset", "--run-root", f"{TMP}/runs", "--name", "f",
                                "--overwrite"], "exists and is not a directory", files={"runs/f": "mine\n"}, modes=AS_GIVEN),
    "the run root is a file": T(["--model", "@model", "--dataset", "@dataset", "--run-root", f"{TMP}/root", "--name", "r"],
                                "run root", "root is not a directory", files={"root": "mine\n"}, modes=AS_GIVEN),
    "--resume with another optimizer": T(["--optimizer", "sgd"], "--optimizer sgd", "trained with adam", modes=("--resume",)),
    "--resume with a batch size that cannot make the global batch": T(["--batch-size", "5"], "--batch-size 5", "divides 32",
                                                                     modes=("--resume",)),
    "--resume with a model that does not fit": T([], "body.2.weight", "(3, 16)", "(5, 16)", modes=("--resume",),
                                                 model=model_with(**{"nn.Linear(16, 3)": "nn.Linear(16, 5)"})),
    "--resume with a model of other layers": T([], "does not fit", "head.weight", modes=("--resume",),
                                               model=model_with(**{"self.frozen = nn.Linear(4, 4)": "self.head = nn.Linear(4, 4)",
                                                                   "self.frozen(x)": "self.head(x)"})),
    "--resume: last.pt is a directory": D(lambda r: replace_with_directory(r / "checkpoints" / "last.pt"),
                                           "--resume: no checkpoint"),
    "--resume: checkpoints is a file": D(lambda r: (shutil.rmtree(r / "checkpoints"), (r / "checkpoints").write_text("x")),
                                         "--resume: no checkpoint"),
    "--resume: last.pt is empty": D(lambda r: (r / "checkpoints" / "last.pt").write_bytes(b""), "last.pt", "truncated or corrupt"),
    "--resume: last.pt holds a pickle payload": D(lambda r: edit_checkpoint(r, lambda s: s.update(evil=Payload())),
                                                  "last.pt", "was refused", "never runs code",
                                                  absent=("weights_only", "Re-running")),
    "--resume: last.pt without weights": D(lambda r: edit_checkpoint(r, lambda s: s.pop("model")), "last.pt",
                                           "not a scorch checkpoint"),
    "--resume: last.pt of an unknown format": D(lambda r: edit_checkpoint(r, lambda s: s.update(format=99)), "last.pt",
                                                "format 99"),
    "--resume: last.pt with a NaN in the optimizer": D(lambda r: edit_checkpoint(
        r, lambda s: next(iter(s["optimizer"]["state"].values()))["exp_avg"].fill_(float("nan"))), "last.pt", "not finite",
        "optimizer state 0.exp_avg"),
    "--resume: last.pt with a NaN weight": D(lambda r: edit_checkpoint(r, lambda s: s["model"]["body.0.weight"].fill_(float("inf"))),
                                             "last.pt", "not finite", "body.0.weight"),
    "--resume: history.csv is a directory": D(lambda r: replace_with_directory(r / "history.csv"), "history.csv"),
    "--resume: history.csv missing": D(lambda r: (r / "history.csv").unlink(), "history.csv is missing", "1 row"),
    "--resume: meta.json a list": D(lambda r: (r / "meta.json").write_text("[]"), "meta.json", "damaged"),
    "--resume: config.json with a value out of range": D(lambda r: edit_json(r / "config.json", lambda c: c.update(lr=-1.0)),
                                                         "config.json", "--lr", "-1.0", "as saved"),
    "--resume: config.json of the wrong type": D(lambda r: edit_json(r / "config.json", lambda c: c.update(epochs="two")),
                                                 "config.json", "epochs = 'two'", "expected int"),
    "--resume: config.json a list": D(lambda r: (r / "config.json").write_text("[1]"), "config.json", "expected a JSON object"),
    "--resume with --lr and Socket.optimizer": T(["--lr", "0.5"], "--lr", "Socket.optimizer", modes=("--resume",),
                                                 model=model_plus("\n    def optimizer(self, params):\n"
                                                                  "        return torch.optim.Adam(params)\nimport torch\n")),
}


def _paths(tmp_path, train: Train) -> tuple[str, str]:
    out = []
    for src, good, name in ((train.model, MODEL, "model.py"), (train.dataset, DATASET, "dataset.py")):
        if src is None:
            out.append(good)
        elif src == MISSING:
            out.append(str(tmp_path / f"missing_{name}"))
        else:
            (tmp_path / name).write_text(src)
            out.append(str(tmp_path / name))
    return out[0], out[1]


def _argv(train: Train, mode: str, root, model: str, dataset: str) -> list[str]:
    extra = list(train.case.args)
    if mode == "as given":
        tokens = {"@model": model, "@dataset": dataset, "@root": str(root)}
        return [tokens.get(a, a) for a in extra]
    name, flags = ("new", []) if mode == "new" else ("old", [mode])
    return base_args(root, name, *flags, "--epochs", "2", *extra, model=model, dataset=dataset)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A run root holding ``old``, a finished one-epoch run (each case gets a copy)."""
    root = tmp_path_factory.mktemp("runs")
    assert main(base_args(root, "old", "--epochs", "1")) == 0
    return root


@pytest.mark.parametrize("train, mode", [pytest.param(t, m, id=f"{name} [{m}]") for name, t in CASES.items() for m in t.modes])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(train, mode, tmp_path, pristine, capsys, monkeypatch):
    root = tmp_path / "runs"
    shutil.copytree(pristine, root)
    if train.damage is not None:
        train.damage(root / "old")
    model, dataset = _paths(tmp_path, train)
    case = Case(_argv(train, mode, root, model, dataset), *train.case.words, code=train.case.code, files=train.case.files,
                absent=train.case.absent)
    ignore = SESSION_RECORD if train.training and mode == "--resume" else ()
    run_in_process(main, "scorch-train", case, tmp_path, capsys, monkeypatch, ignore=ignore)


def test_the_catalogue_of_scorch_train_has_its_cases():
    assert len(CASES) >= 150


def test_debug_shows_the_traceback(tmp_path, capsys):
    (tmp_path / "model.py").write_text(model_with(**{FORWARD: "return self.body(x)"}))
    assert main(base_args(tmp_path, "d", "--debug", model=str(tmp_path / "model.py"))) == 2
    assert "Traceback" in capsys.readouterr().err


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
