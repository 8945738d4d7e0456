"""The original scorch's model and dataset files train unchanged (tests/fixtures/original_model.py,
original_dataset.py): train_modules, the Socket's own optimizer and scheduler instances, a __call__
proxy, numpy metrics with 'main' and 'loss'; under mpirun -np 2 (Horovod, the default there) too."""
import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from scorch.cli.train import main
from tests.helpers import FIXTURES, base_args, scorch_train, snapshot, unmeasured, weights

MODEL = str(FIXTURES / "original_model.py")
DATASET = str(FIXTURES / "original_dataset.py")


def args(root, name, *extra, model=MODEL):
    return base_args(root, name, "--epochs", "4", *extra, model=model, dataset=DATASET)


def rows(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("original")
    out = scorch_train(args(root, "two", "--batch-size", "16"), np_=2)
    assert out.returncode == 0, out.stderr
    assert "backend horovod (started by mpirun, Horovod importable; on CPU it needs spare cores" in out.stderr
    assert main(args(root, "one", "--batch-size", "32")) == 0
    return root, out.stderr


def split(mode):
    from tests.fixtures.original_dataset import DataSet, DataSetIndex
    ds = DataSet(DataSetIndex(None), mode)
    return torch.stack([ds[i][0][0] for i in range(len(ds))]), torch.stack([ds[i][1][0] for i in range(len(ds))])


@pytest.mark.mpi
def test_an_original_model_file_trains_under_mpirun_as_on_one_rank(runs):
    root, _ = runs
    two, one = weights(root / "two"), weights(root / "one")
    assert max((two[k] - one[k]).abs().max().item() for k in two) < 1e-4  # 2 ranks x 16 = 1 rank x 32
    for a, b in zip(rows(root / "two"), rows(root / "one")):
        for key in ("lr", "valid/loss", "valid/main", "valid/metrics.loss", "train/main"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4), key
    assert float(rows(root / "two")[-1]["valid/main"]) > 0.7


@pytest.mark.mpi
def test_the_sockets_optimizer_and_scheduler_instances_are_the_ones_that_train_and_are_saved(runs):
    root, _ = runs
    history = rows(root / "two")
    ckpt = torch.load(root / "two" / "checkpoints" / "last.pt", weights_only=True)
    # Adam at the Socket's 1e-2 (not --lr's default 1e-3), halved by its ReduceLROnPlateau stepped
    # with valid/main: replay the scheduler on the history's valid/main and get the same rates.
    net = torch.nn.Linear(1, 1)
    replay_opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    replay = torch.optim.lr_scheduler.ReduceLROnPlateau(replay_opt, mode="max", factor=0.5, patience=0, threshold=0.25)
    for row in history:
        assert float(row["lr"]) == replay_opt.param_groups[0]["lr"]
        replay.step(float(row["valid/main"]))
    assert [float(r["lr"]) for r in history] != [1e-2] * 4  # the scheduler did something
    state = {k: v for k, v in replay.state_dict().items() if k != "_last_lr"}
    assert {k: ckpt["scheduler"][k] for k in state} == state
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == replay_opt.param_groups[0]["lr"]
    assert len(ckpt["optimizer"]["state"]) == 4 and "exp_avg" in ckpt["optimizer"]["state"][0]  # Adam, 4 tensors


@pytest.mark.mpi
def test_main_is_the_default_monitor_maximised(runs):
    root, stderr = runs
    assert "monitor valid/main (max)" in stderr
    main_values = [float(r["valid/main"]) for r in rows(root / "two")]
    best = torch.load(root / "two" / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == 1 + int(np.argmax(main_values)) and best["loop"]["best"] == max(main_values)


@pytest.mark.mpi
def test_a_metric_named_loss_never_overwrites_the_criterions_loss(runs):
    # 'loss' of Socket.metrics is kept as metrics.loss; valid/loss stays the criterion's cross entropy.
    root, stderr = runs
    from tests.fixtures.original_model import Network, Socket
    net = Network()
    net.load_state_dict(weights(root / "two"))
    net.eval()
    x, y = split("valid")
    with torch.no_grad():
        preds = net([x])
        socket = Socket(net)
        cross_entropy = socket.criterion(preds, [y]).item()
        l1 = float(socket.metrics(preds, [y])["loss"])
    last = rows(root / "two")[-1]
    assert float(last["valid/loss"]) == pytest.approx(cross_entropy, rel=1e-6)
    assert float(last["valid/metrics.loss"]) == pytest.approx(l1, rel=1e-5)
    assert abs(cross_entropy - l1) > 0.1  # they differ, so an overwrite would show
    assert "returns 'loss': recorded as train/metrics.loss and valid/metrics.loss" in stderr


@pytest.mark.mpi
def test_modules_outside_train_modules_stay_frozen(runs):
    root, _ = runs
    torch.manual_seed(0)
    from tests.fixtures.original_model import Network
    start = Network().state_dict()
    end = weights(root / "two")
    assert torch.equal(start["stem.weight"], end["stem.weight"]) and not torch.equal(start["head.weight"], end["head.weight"])


def test_an_original_run_resumes_bitwise_with_its_optimizer_and_scheduler(tmp_path):
    common = ["--batch-size", "32"]
    assert main(args(tmp_path, "whole", *common)) == 0
    assert main(args(tmp_path, "split", *common, "--epochs", "2")) == 0
    assert main(args(tmp_path, "split", *common, "--epochs", "4", "--resume")) == 0
    a = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["optimizer"]["state"][i]["exp_avg"], b["optimizer"]["state"][i]["exp_avg"]) for i in range(4))
    assert a["scheduler"] == b["scheduler"]
    strip = lambda rs: [unmeasured(r) for r in rs]  # noqa: E731
    assert strip(rows(tmp_path / "whole")) == strip(rows(tmp_path / "split"))


def edited(tmp_path, old, new):
    text = Path(MODEL).read_text()
    assert old in text, old
    path = tmp_path / "model.py"
    path.write_text(text.replace(old, new))
    return str(path)


OPTIMIZER = "self.optimizer = torch.optim.Adam(self.train_modules.parameters(), lr=1e-2)"
BAD = {
    # name: (old, new, words of the one line)
    "an optimizer over frozen parameters": (OPTIMIZER, "self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-2)",
                                            ["model.py: Socket.optimizer optimises 'stem.weight'",
                                             "outside Socket.train_modules (frozen)", "self.train_modules.parameters()"]),
    "an optimizer that is a string": ("threshold=0.25)", "threshold=0.25)\n        self.optimizer = 'adam'",
                                      ["Socket.optimizer is str, expected a torch.optim.Optimizer"]),
    "a scheduler over another optimizer": (
        "ReduceLROnPlateau(self.optimizer,", "ReduceLROnPlateau(torch.optim.SGD(self.train_modules.parameters(), lr=1.0),",
        ["Socket.scheduler is attached to an optimizer that does not train", "ReduceLROnPlateau(self.optimizer)"]),
    "no train_modules": ("self.train_modules", "self.modules_to_train",
                         ["Socket.trainable_modules is missing", "train_modules, is accepted too"]),
    "both 'loss' and 'metrics.loss'": ('"first_class": np.array', '"metrics.loss": 1.0, "first_class": np.array',
                                       ["Socket.metrics returned both 'loss' and 'metrics.loss'"]),
    "a metric that is an array of two": ('"first_class": np.array((labels == 0).mean())', '"first_class": np.array([1.0, 2.0])',
                                         ["Socket.metrics: metric 'first_class' is a ndarray, expected a number"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_original_sockets_are_one_line_and_nothing_is_written(tmp_path, capsys, case):
    old, new, words = BAD[case]
    model = edited(tmp_path, old, new)
    (tmp_path / "runs").mkdir()
    before = snapshot(tmp_path / "runs")
    capsys.readouterr()
    assert main(args(tmp_path / "runs", "r", model=model)) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("scorch-train")]
    assert len(lines) == 1 and all(w in lines[0] for w in words), lines
    assert snapshot(tmp_path / "runs") == before


def test_a_plateau_scheduler_looking_the_other_way_is_said_once(tmp_path, capsys):
    model = edited(tmp_path, 'mode="max", factor=0.5', 'factor=0.5')  # ReduceLROnPlateau's default mode, 'min'
    assert main(args(tmp_path, "r", "--epochs", "1", model=model)) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "ReduceLROnPlateau(mode='min')" in line]
    assert len(warned) == 1 and "stepped with valid/main, which is maximised" in warned[0] and "mode='max'" in warned[0]
