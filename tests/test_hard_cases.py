"""The guarantees on untidy input: a training set no world size divides, a short last
accumulation window, a valid split smaller than the world size, BatchNorm, frozen modules,
parameters unused in some steps, one-element losses, NaN in the monitored value."""
import csv
import math
from pathlib import Path

import pytest
import torch

from scorch.cli.train import main
from tests.helpers import DATASET, FIXTURES, base_args, scorch_train, weights

UNTIDY = str(FIXTURES / "untidy_dataset.py")
MLP = str(FIXTURES / "mlp_model.py")
BN = str(FIXTURES / "bn_model.py")
UNUSED = str(FIXTURES / "unused_model.py")
SGD = ["--optimizer", "sgd", "--momentum", "0", "--lr", "0.1", "--epochs", "2"]


def rows(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def max_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def untidy(root, name, *extra, model=MLP):
    return base_args(root, name, *extra, model=model, dataset=UNTIDY)


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """301 training samples: 1 rank x 32, 2 ranks x 16, 2 ranks x 8 x accumulate 2, 3 ranks."""
    root = tmp_path_factory.mktemp("odd")
    assert main(untidy(root, "one-32", "--batch-size", "32", *SGD)) == 0
    assert main(untidy(root, "one-16", "--batch-size", "16", *SGD)) == 0
    assert main(untidy(root, "one-8x2", "--batch-size", "8", "--accumulate", "2", *SGD)) == 0
    for name, np_, extra in (("two-16", 2, ["--batch-size", "16"]), ("two-8x2", 2, ["--batch-size", "8", "--accumulate", "2"]),
                             ("three-4", 3, ["--batch-size", "4", "--set", "dataset.n_valid=2"])):
        out = scorch_train(untidy(root, name, *extra, *SGD), np_=np_)
        assert out.returncode == 0, out.stderr
    return root


def test_accumulation_with_a_short_last_window_equals_the_larger_batch(odd):
    # 301 = 18 x 16 + 13: every epoch ends with a window of one micro-batch of 8 and one of 5.
    assert max_diff(weights(odd / "one-16"), weights(odd / "one-8x2")) < 1e-5
    assert max_diff(weights(odd / "two-16"), weights(odd / "two-8x2")) < 1e-5


def test_two_ranks_with_batch_b_equal_one_rank_with_2b_on_an_odd_training_set(odd):
    assert max_diff(weights(odd / "one-32"), weights(odd / "two-16")) < 1e-4
    assert max_diff(weights(odd / "one-32"), weights(odd / "one-16")) > 1e-3  # the comparison can fail
    assert [r["step"] for r in rows(odd / "two-16")] == [r["step"] for r in rows(odd / "one-32")] == ["10", "20"]


def test_train_metrics_count_every_sample_once_on_any_world_size(odd):
    from tests.fixtures.untidy_dataset import DataSet, DataSetIndex
    train = DataSet(DataSetIndex(), "train")
    exact = sum(int(train[i][1][0] == 0) for i in range(len(train))) / len(train)
    for name in ("one-32", "two-16", "three-4"):
        for row in rows(odd / name):  # first_class depends on the targets only; a sample counted twice moves it ~1e-3
            assert float(row["train/first_class"]) == pytest.approx(exact, abs=1e-7), name


def test_a_valid_split_smaller_than_the_world_size_is_exact(odd):
    from tests.fixtures.untidy_dataset import DataSet, DataSetIndex
    valid = DataSet(DataSetIndex(n_valid=2), "valid")
    exact = sum(int(valid[i][1][0] == 0) for i in range(2)) / 2
    assert all(float(r["valid/first_class"]) == pytest.approx(exact, abs=1e-7) for r in rows(odd / "three-4"))


@pytest.fixture(scope="module")
def bn_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bn")
    out = scorch_train(untidy(root, "bn", "--batch-size", "16", "--epochs", "2", "--lr", "0.01", model=BN), np_=2)
    assert out.returncode == 0, out.stderr
    return root / "bn"


def test_a_frozen_batchnorm_never_moves(bn_run):
    torch.manual_seed(0)
    from tests.fixtures.bn_model import Network
    start = Network().state_dict()
    end = weights(bn_run)
    for key in ("frozen.1.running_mean", "frozen.1.running_var", "frozen.1.num_batches_tracked", "frozen.0.weight"):
        assert torch.equal(start[key], end[key]), key
    assert not torch.equal(start["head.1.running_mean"], end["head.1.running_mean"])  # the trainable one does


def test_reported_validation_is_that_of_the_checkpointed_model(bn_run):
    from tests.fixtures.bn_model import Network, Socket
    from tests.fixtures.untidy_dataset import DataSet, DataSetIndex
    net = Network()
    net.load_state_dict(weights(bn_run))
    net.eval()
    valid = DataSet(DataSetIndex(), "valid")
    x = torch.stack([valid[i][0][0] for i in range(len(valid))])
    y = torch.stack([valid[i][1][0] for i in range(len(valid))])
    with torch.no_grad():
        loss = Socket(net).criterion(net([x]), [y]).item()
    assert float(rows(bn_run)[-1]["valid/loss"]) == pytest.approx(loss, rel=1e-6)


@pytest.mark.mpi
def test_a_head_that_forward_never_uses_trains_on_two_ranks(tmp_path):
    out = scorch_train(untidy(tmp_path, "aux", "--batch-size", "16", "--epochs", "1", "--backend", "torch", model=UNUSED), np_=2)
    assert out.returncode == 0, out.stderr
    assert "look for unused parameters" in out.stderr or "unused parameters" in out.stderr


@pytest.mark.mpi
def test_a_branch_not_taken_in_some_steps_is_one_clear_line_then_trains_with_the_flag(tmp_path):
    # DistributedDataParallel's limitation (--backend torch); Horovod needs nothing (below).
    args = untidy(tmp_path, "branch", "--batch-size", "16", "--epochs", "1", "--set", "model.unused='branch'",
                  "--backend", "torch", model=UNUSED)
    out = scorch_train(args, np_=2, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if "scorch-train" in line]
    assert lines and all("--find-unused-parameters" in line for line in lines), out.stderr
    out = scorch_train([*args, "--overwrite", "--find-unused-parameters"], np_=2)
    assert out.returncode == 0, out.stderr


@pytest.mark.mpi
def test_horovod_trains_a_branch_not_taken_in_some_steps_as_is(tmp_path):
    args = untidy(tmp_path, "branch", "--batch-size", "16", "--epochs", "1", "--set", "model.unused='branch'", model=UNUSED)
    out = scorch_train(args, np_=2, timeout=120)  # Horovod, mpirun's default
    assert out.returncode == 0, out.stderr
    assert "backend horovod" in out.stderr and "unused parameters" not in out.stderr


def test_a_one_element_loss_of_shape_1_trains(tmp_path):
    src = Path(MLP).read_text().replace("return nn.functional.cross_entropy(preds[0], targets[0])",
                                   "return nn.functional.cross_entropy(preds[0], targets[0]).reshape(1)")
    (tmp_path / "model.py").write_text(src)
    assert main(base_args(tmp_path, "r", "--epochs", "1", model=str(tmp_path / "model.py"))) == 0


NAN_FIRST = Path(MLP).read_text().replace(
    'return {"accuracy": correct.mean(), "first_class": (targets[0] == 0).float().mean().item()}',
    'self.evals = getattr(self, "evals", 0) + (not self.model.training)\n'
    '        nan = float("nan") if self.evals <= 5 else 0.0  # 2 pre-flight batches, the 3 valid batches of epoch 1\n'
    '        return {"accuracy": correct.mean() + nan, "first_class": (targets[0] == 0).float().mean().item()}')


def test_a_nan_monitored_value_is_never_best_and_counts_as_no_improvement(tmp_path, caplog):
    (tmp_path / "model.py").write_text(NAN_FIRST)
    model = str(tmp_path / "model.py")
    assert main(base_args(tmp_path, "r", "--epochs", "3", "--batch-size", "16", "--monitor", "valid/accuracy",
                          "--patience", "2", model=model)) == 0
    history = rows(tmp_path / "r")
    assert math.isnan(float(history[0]["valid/accuracy"])) and len(history) == 3  # not stopped early
    best = torch.load(tmp_path / "r" / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] >= 2 and math.isfinite(best["loop"]["best"])


def test_a_nan_valid_loss_stops_the_run_with_one_line(tmp_path, capsys):
    src = Path(MLP).read_text().replace(
        "return nn.functional.cross_entropy(preds[0], targets[0])",
        "loss = nn.functional.cross_entropy(preds[0], targets[0])\n"
        "        self.evals = getattr(self, 'evals', 0) + (not self.model.training)  # the pre-flight check makes 2\n"
        "        return loss * float('nan') if self.evals > 2 else loss")
    (tmp_path / "model.py").write_text(src)
    assert main(base_args(tmp_path, "r", "--epochs", "3", model=str(tmp_path / "model.py"))) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("scorch-train")]
    assert len(err) == 1 and "valid/loss is nan at epoch 1" in err[0]
    assert not (tmp_path / "r" / "checkpoints" / "last.pt").exists()


PARAMFREE = str(FIXTURES / "paramfree_model.py")


def test_modules_without_parameters_train_and_frozen_ones_stay_in_eval_mode(tmp_path, capsys):
    # A Dropout and a BatchNorm1d(affine=False) beside the trainable modules used to be put in
    # eval mode as "frozen": the run was bitwise the one with p=0 and the statistics never moved.
    from scorch.cli.check import main as check
    from scorch.cli.train import main as train
    from tests.fixtures.paramfree_model import Network
    for name, p in (("half", "0.5"), ("none", "0.0")):
        assert train(base_args(tmp_path, name, "--epochs", "2", "--batch-size", "16", "--set", f"model.p={p}",
                               model=PARAMFREE)) == 0
    half, none = weights(tmp_path / "half"), weights(tmp_path / "none")
    assert not torch.equal(half["head.weight"], none["head.weight"])  # the Dropout is on while training
    start = Network().state_dict()
    assert not torch.equal(start["norm.running_mean"], half["norm.running_mean"])  # its statistics move
    assert int(half["norm.num_batches_tracked"]) == 8  # 2 epochs of 4 micro-batches
    for key in ("frozen.1.running_mean", "frozen.1.num_batches_tracked"):
        assert torch.equal(start[key], half[key]), key  # the frozen block's BatchNorm does not
    capsys.readouterr()
    assert check(["--model", PARAMFREE, "--dataset", DATASET]) == 0
    out = capsys.readouterr().out
    assert "in eval mode while training (frozen modules): frozen" in out, out
    assert "drop" not in out.split("frozen modules):")[1].splitlines()[0]


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["torch", "horovod"])
def test_the_usual_pytorch_freeze_trains_under_both_backends(tmp_path, backend):
    # trainable_modules = [the whole Network], backbone.requires_grad_(False): the backbone is frozen.
    model = str(FIXTURES / "requires_grad_model.py")
    out = scorch_train(base_args(tmp_path, "rg", "--epochs", "2", "--batch-size", "8", model=model), np_=2,
                       extra_env={"SCORCH_BACKEND": backend})
    assert out.returncode == 0, out.stderr[-3000:]
    assert main(base_args(tmp_path, "one", "--epochs", "2", "--batch-size", "16", model=model)) == 0
    torch.manual_seed(0)
    from tests.fixtures.requires_grad_model import Network
    start, two, one = Network().state_dict(), weights(tmp_path / "rg"), weights(tmp_path / "one")
    for key in ("backbone.0.weight", "backbone.0.bias"):
        assert torch.equal(start[key], two[key]), key
    assert not torch.equal(start["head.weight"], two["head.weight"])
    for key in one:  # 2 ranks x 8 is 1 rank x 16
        assert torch.allclose(one[key], two[key], atol=1e-4, rtol=0), key


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["torch", "horovod"])
def test_batchnorm_trains_when_a_short_last_step_would_leave_one_sample_to_a_rank(tmp_path, backend):
    # 35 = 32 + 3: the last step's 3 samples went 2 to rank 0 and 1 to rank 1, whose BatchNorm
    # died ("Expected more than 1 value per channel when training"). Now rank 0 trains all 3 and
    # rank 1 a stand-in of weight 0; the step is still the mean over its 3 samples.
    out = scorch_train(untidy(tmp_path, "two", "--batch-size", "16", "--set", "dataset.n_train=35", *SGD, model=BN),
                       np_=2, extra_env={"SCORCH_BACKEND": backend})
    assert out.returncode == 0, out.stderr[-3000:]
    assert [r["step"] for r in rows(tmp_path / "two")] == ["2", "4"]


def test_a_stand_in_micro_batch_moves_no_batchnorm_statistics(tmp_path):
    # 1 rank x 8 x accumulate 4 on 35 samples: each epoch's last step holds 3 samples, trained as one
    # micro-batch of 3 and three stand-ins of weight 0, which used to count in num_batches_tracked
    # and move the running means (and, of one sample, crashed).
    assert main(untidy(tmp_path, "acc", "--batch-size", "8", "--accumulate", "4", "--set", "dataset.n_train=35",
                       *SGD, model=BN)) == 0
    end = weights(tmp_path / "acc")
    assert int(end["head.1.num_batches_tracked"]) == 2 * 5  # 4 + 1 real micro-batches an epoch
    # the stand-ins ran with the statistics held: the same as a run whose last step is one micro-batch of 3
    assert main(untidy(tmp_path, "one", "--batch-size", "32", "--set", "dataset.n_train=35", *SGD, model=BN)) == 0
    assert int(weights(tmp_path / "one")["head.1.num_batches_tracked"]) == 2 * 2


def test_an_epoch_ending_with_a_one_sample_step_is_refused_with_batchnorm(tmp_path, capsys):
    assert main(untidy(tmp_path, "r", "--batch-size", "16", "--set", "dataset.n_train=33", *SGD, model=BN)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "optimizer step of 1 sample" in err[0] and "head.1" in err[0] and "--batch-size" in err[0], err
    assert not (tmp_path / "r" / "checkpoints").exists() or not list((tmp_path / "r" / "checkpoints").iterdir())
    assert main(untidy(tmp_path, "m", "--batch-size", "16", "--set", "dataset.n_train=33", *SGD)) == 0  # no BatchNorm: fine
