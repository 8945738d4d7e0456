"""Exact resume: N epochs in one go equal N/2 + resume, bitwise, for 1 rank and 2 ranks under mpirun."""
import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from scorch.cli.train import main
from tests.helpers import BIN, FIXTURES, base_args, env, mpirun, scorch_train, unmeasured

MODEL = str(FIXTURES / "dropout_model.py")
DATASET = str(FIXTURES / "noisy_dataset.py")
KINDS = {
    # dropout and random augmentation in DataLoader workers
    "tidy": ([], MODEL, DATASET),
    # BatchNorm (one frozen), 301 samples, accumulation 3 (a short last window), augmentation, 1 valid sample
    "untidy": (["--accumulate", "3", "--set", "dataset.noise=0.1", "--set", "dataset.n_valid=1"],
               str(FIXTURES / "bn_model.py"), str(FIXTURES / "untidy_dataset.py")),
}


def args(root, name, *extra, kind="tidy"):
    more, model, dataset = KINDS[kind]
    return base_args(root, name, "--batch-size", "8", "--lr", "0.05", "--workers", "2", *more, *extra, model=model, dataset=dataset)


def history_without_time(run_dir):
    with open(run_dir / "history.csv") as f:
        return [unmeasured(row) for row in csv.DictReader(f)]


def assert_same_run(a, b):
    ca = torch.load(a / "checkpoints" / "last.pt", weights_only=True)
    cb = torch.load(b / "checkpoints" / "last.pt", weights_only=True)
    assert ca["epoch"] == cb["epoch"] and ca["step"] == cb["step"]
    for key in ca["model"]:
        assert torch.equal(ca["model"][key], cb["model"][key]), key  # bitwise
    for pa, pb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
        assert torch.equal(pa["exp_avg"], pb["exp_avg"])
    assert ca["scheduler"] == cb["scheduler"]
    assert history_without_time(a) == history_without_time(b)


@pytest.mark.parametrize("kind", list(KINDS))
def test_resume_is_bitwise_exact_one_rank(tmp_path, kind):
    assert main(args(tmp_path, "whole", "--epochs", "4", kind=kind)) == 0
    assert main(args(tmp_path, "split", "--epochs", "2", kind=kind)) == 0
    assert main(args(tmp_path, "split", "--epochs", "4", "--resume", kind=kind)) == 0
    assert_same_run(tmp_path / "whole", tmp_path / "split")
    assert len(history_without_time(tmp_path / "split")) == 4


def test_a_different_seed_gives_different_weights(tmp_path):
    # The comparison above would be empty if runs could not differ.
    assert main(args(tmp_path, "a", "--epochs", "1")) == 0
    assert main(args(tmp_path, "b", "--epochs", "1", "--seed", "1")) == 0
    wa = torch.load(tmp_path / "a/checkpoints/last.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "b/checkpoints/last.pt", weights_only=True)["model"]
    assert not all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.mpi
@pytest.mark.parametrize("kind, backend", [("tidy", "torch"), ("untidy", "auto")])  # auto: Horovod under mpirun
def test_resume_is_bitwise_exact_two_ranks_under_mpirun(tmp_path, kind, backend):
    # (tests/test_horovod.py: the tidy kind under Horovod.)
    for name, extra in (("whole", ["--epochs", "4"]), ("split", ["--epochs", "2"]), ("split", ["--epochs", "4", "--resume"])):
        out = scorch_train(args(tmp_path, name, *extra, "--backend", backend, kind=kind), np_=2)
        assert out.returncode == 0, out.stderr
        assert f"backend {'horovod' if backend == 'auto' else backend} (" in out.stderr
    assert_same_run(tmp_path / "whole", tmp_path / "split")
    ckpt = torch.load(tmp_path / "split/checkpoints/last.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2 and not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])


def test_sigkill_mid_run_resumes_from_the_last_checkpoint(tmp_path):
    cmd = [str(BIN / "scorch-train"), *args(tmp_path, "killed", "--epochs", "4")]
    e = env()
    e["SCORCH_TEST_SLOW"] = "0.01"  # about 1 s per epoch
    proc = subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not last.exists():
        time.sleep(0.05)
    assert last.exists(), "no checkpoint appeared"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = torch.load(last, weights_only=True)["epoch"]
    assert killed_at < 4
    assert main(args(tmp_path, "killed", "--epochs", "4", "--resume")) == 0
    assert main(args(tmp_path, "whole", "--epochs", "4")) == 0
    assert_same_run(tmp_path / "whole", tmp_path / "killed")


# --- another world size on resume: the same run ---------------------------------------------------

UNTIDY = str(FIXTURES / "untidy_dataset.py")
MLP = str(FIXTURES / "mlp_model.py")


def ws_args(root, name, *extra):
    # 301 samples with random augmentation drawn in 2 DataLoader workers; 2 ranks x 16 = 32 per step.
    return base_args(root, name, "--batch-size", "16", "--lr", "0.05", "--workers", "2", "--set", "dataset.noise=0.1",
                     *extra, model=MLP, dataset=UNTIDY)


def max_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.mark.mpi
def test_a_run_resumed_on_another_world_size_is_the_same_run(tmp_path):
    from tests.test_preempt import start_and_signal
    out = scorch_train(ws_args(tmp_path, "whole", "--epochs", "4"), np_=2)
    assert out.returncode == 0, out.stderr
    out = scorch_train(ws_args(tmp_path, "boundary", "--epochs", "2"), np_=2)
    assert out.returncode == 0, out.stderr
    cmd = [*mpirun(2), str(BIN / "scorch-train"), *ws_args(tmp_path, "cut", "--epochs", "4")]
    code, err = start_and_signal(cmd, tmp_path / "cut", signal.SIGUSR1, False)
    assert code == 3, err
    cut = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert 0 < cut["cursor"]["samples"] < 301 and cut["cursor"]["world_size"] == 2, "the stop was not mid-epoch"
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)
    for name in ("boundary", "cut"):  # both go on with 1 rank: --batch-size 16 --accumulate 2 keeps 32 per step
        assert main(ws_args(tmp_path, name, "--epochs", "4", "--resume")) == 0
        end = torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)
        assert end["step"] == whole["step"] and end["cursor"]["global_batch"] == 32
        assert max_diff(whole["model"], end["model"]) < 1e-4, name
        assert json.loads((tmp_path / name / "config.json").read_text())["accumulate"] == 1  # as given
        session = json.loads((tmp_path / name / "meta.json").read_text())["sessions"][-1]
        assert (session["batch_size"], session["accumulate"], session["global_batch"]) == (16, 2, 32)  # as fitted
        rows = history_without_time(tmp_path / name)
        for a, b in zip(history_without_time(tmp_path / "whole"), rows):
            assert float(a["train/loss"]) == pytest.approx(float(b["train/loss"]), rel=1e-4)
            assert float(a["valid/loss"]) == pytest.approx(float(b["valid/loss"]), rel=1e-4)
    # The comparison can fail: the same resume with another global batch (an --accumulate other than
    # the one given before) ends elsewhere.
    assert main(ws_args(tmp_path, "boundary", "--epochs", "5", "--resume", "--accumulate", "3")) == 0
    other = torch.load(tmp_path / "boundary" / "checkpoints" / "last.pt", weights_only=True)
    assert other["cursor"]["global_batch"] == 48


@pytest.mark.parametrize("global_batch, world, batch, accumulate, given, expected", [
    (32, 1, 16, 1, False, (16, 2)),  # 2 ranks x 16 -> 1 rank: accumulate 2
    (32, 2, 16, 2, False, (16, 1)),  # 1 rank x 16 x 2 -> 2 ranks
    (32, 2, 32, 1, False, (16, 1)),  # 1 rank x 32 -> 2 ranks: the per-rank batch halves
    (32, 4, 16, 1, False, (8, 1)),
    (48, 1, 32, 1, False, (24, 2)),  # 32 does not divide 48: the smallest accumulation that fits in 32
    (32, 1, 8, 1, True, (8, 4)),  # --batch-size 8 given anew: accumulate 4
    (32, 3, 16, 1, False, None),  # 3 ranks cannot share 32 samples equally
    (32, 1, 12, 1, True, None),  # --batch-size 12 cannot make 32
])
def test_fit_global_batch(global_batch, world, batch, accumulate, given, expected):
    from scorch.errors import ScorchError
    from scorch.training.resume import fit_global_batch
    if expected is None:
        with pytest.raises(ScorchError):
            fit_global_batch(global_batch, world, batch, accumulate, given)
    else:
        assert fit_global_batch(global_batch, world, batch, accumulate, given) == expected


# --- settings given anew on resume take effect, or are refused ---------------------------------------

def test_changed_optimizer_settings_take_effect_on_resume(tmp_path):
    common = base_args(tmp_path, "r", "--optimizer", "sgd", "--lr", "0.01", "--momentum", "0.5")
    assert main([*common, "--epochs", "1"]) == 0
    assert main([*common, "--epochs", "2", "--resume", "--lr", "0.002", "--weight-decay", "0.1", "--momentum", "0.8"]) == 0
    ckpt = torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=True)
    group = ckpt["optimizer"]["param_groups"][0]
    assert (group["lr"], group["weight_decay"], group["momentum"]) == (0.002, 0.1, 0.8)
    assert [float(r["lr"]) for r in history_without_time(tmp_path / "r")] == [0.01, 0.002]


OWN_OPTIMIZER = Path(FIXTURES / "mlp_model.py").read_text() + '''
    def optimizer(self, params):
        return torch.optim.SGD(params, lr=0.5)
'''


def own_optimizer_model(tmp_path):
    src = OWN_OPTIMIZER.replace("from torch import nn", "import torch\nfrom torch import nn")
    path = tmp_path / "own_optimizer.py"
    path.write_text(src)
    return str(path)


def test_a_list_schedule_gives_absolute_rates_with_the_model_files_optimizer(tmp_path):
    model = own_optimizer_model(tmp_path)
    assert main(base_args(tmp_path, "r", "--epochs", "3", "--set", "lr_schedule=[[1, 0.05], [9, 0.01]]", model=model)) == 0
    assert [float(r["lr"]) for r in history_without_time(tmp_path / "r")] == [0.05, 0.01, 0.01]
    assert main(base_args(tmp_path, "c", "--epochs", "2", model=model)) == 0
    assert [float(r["lr"]) for r in history_without_time(tmp_path / "c")] == [0.5, 0.5]  # the optimizer's own rate


@pytest.mark.parametrize("first, then, words", [
    (["--optimizer", "adam"], ["--optimizer", "sgd"], ["--optimizer sgd", "adam", "cannot carry over"]),
    ("own", ["--lr", "0.1"], ["--lr", "Socket.optimizer", "no effect"]),
    (["--model", str(FIXTURES / "dropout_model.py")], ["--lr", "0.1"], ["--lr", "Socket.scheduler"]),
])
def test_settings_that_cannot_take_effect_are_refused_on_resume(tmp_path, capsys, first, then, words):
    if first == "own":
        first = ["--model", own_optimizer_model(tmp_path)]
    assert main([*base_args(tmp_path, "r", "--epochs", "1"), *first]) == 0
    from tests.helpers import snapshot
    before = snapshot(tmp_path / "r")
    capsys.readouterr()
    assert main([*base_args(tmp_path, "r", "--epochs", "2", "--resume"), *first, *then]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("scorch-train")]
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert snapshot(tmp_path / "r") == before


def test_a_new_monitor_on_resume_restarts_best_and_patience(tmp_path, capsys):
    # best.pt kept valid/loss's value while validations were ranked by valid/accuracy, and the
    # early-stopping count carried over: now both start afresh, said in the log.
    common = base_args(tmp_path, "m", "--batch-size", "16", "--lr", "0.01")
    assert main([*common, "--epochs", "2", "--monitor", "valid/loss", "--patience", "5"]) == 0
    saved = torch.load(tmp_path / "m" / "checkpoints" / "last.pt", weights_only=True)["loop"]
    assert saved["monitor"] == "valid/loss" and saved["mode"] == "min"
    capsys.readouterr()
    assert main([*common, "--epochs", "3", "--resume", "--monitor", "valid/accuracy", "--patience", "5"]) == 0
    err = capsys.readouterr().err
    assert "the monitor is now valid/accuracy (max), was valid/loss (min)" in err, err
    best = torch.load(tmp_path / "m" / "checkpoints" / "best.pt", weights_only=True)
    with open(tmp_path / "m" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert best["loop"]["monitor"] == "valid/accuracy" and best["epoch"] == 3
    assert best["loop"]["best"] == pytest.approx(float(rows[2]["valid/accuracy"]))  # the new metric's, not the loss
    assert best["loop"]["best_epoch"] == 3 and best["loop"]["bad_epochs"] == 0
    capsys.readouterr()
    assert main([*common, "--epochs", "4", "--resume", "--monitor", "valid/accuracy", "--patience", "5"]) == 0
    assert "the monitor is now" not in capsys.readouterr().err  # the same monitor again: nothing to say


@pytest.mark.mpi
@pytest.mark.parametrize("first, then, backend", [
    ((1, "32", "1"), (2, "32", "1"), "horovod"),   # 1 rank x 32 requeued on 2 ranks (fitted: 16 each)
    ((2, "16", "1"), (1, "16", "1"), "torch"),     # 2 ranks x 16 moved to 1 rank (fitted: --accumulate 2)
], ids=["1-to-2-ranks", "2-to-1-rank"])
def test_the_same_command_again_goes_on_with_the_same_run_on_a_new_world_size(tmp_path, first, then, backend):
    # A job script runs one command line again and again. The per-rank batch or the accumulation
    # a resume fitted to the new world size was saved as if the user had given it: the next requeue
    # on the same ranks was refused ("give a --batch-size that divides 16") or halved the global
    # batch (--accumulate 1 taken as a change). Every session must train 2 steps an epoch (64 / 32).
    def session(ranks, batch, accumulate, epochs, *extra):
        argv = base_args(tmp_path, "r", "--batch-size", batch, "--accumulate", accumulate, "--epochs", str(epochs), *extra)
        out = scorch_train(argv, np_=ranks if ranks > 1 else None, extra_env={"SCORCH_BACKEND": backend})
        assert out.returncode == 0, out.stderr[-3000:]
    session(*first, 1)
    session(*then, 2, "--resume")
    session(*then, 3, "--resume")  # the same command on the same ranks again
    with open(tmp_path / "r" / "history.csv") as f:
        assert [int(row["step"]) for row in csv.DictReader(f)] == [2, 4, 6]
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (saved["batch_size"], saved["accumulate"]) == (int(then[1]), int(then[2]))  # as given, not as fitted


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["horovod", "torch"])
def test_instance_optimizer_and_scheduler_resume_exactly(tmp_path, backend):
    # Under Horovod the scheduler built in Socket.__init__ held the original optimizer, whose
    # parameter groups the wrapper's resume replaced: it no longer set the rate (0.0025 instead of
    # 0.00125 at epoch 4) and the weights parted from the uninterrupted run.
    model = str(FIXTURES / "instance_sched_model.py")

    def train(name, epochs, *extra):
        out = scorch_train(base_args(tmp_path, name, "--epochs", str(epochs), "--batch-size", "8", *extra, model=model),
                           np_=2, extra_env={"SCORCH_BACKEND": backend})
        assert out.returncode == 0, out.stderr[-3000:]
    train("whole", 4)
    train("cut", 2)
    train("cut", 4, "--resume")
    whole, cut = history_without_time(tmp_path / "whole"), history_without_time(tmp_path / "cut")
    assert [float(r["lr"]) for r in cut] == [float(r["lr"]) for r in whole] == [0.01, 0.005, 0.0025, 0.00125]
    assert whole == cut
    a = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["torch", "horovod"])
def test_augmentation_in_workers_is_the_same_on_any_world_size(tmp_path, backend):
    # A DataLoader worker seeded each micro-batch, whose samples change with the per-rank batch: a
    # run moved from 1 rank x 32 to 2 ranks x 16 drew other augmentation (0.018-0.028 away). Each
    # sample is now seeded by (seed, epoch, sample): 1 x 32, 2 x 16 and 1 x 32 resumed on 2 ranks
    # after its first epoch end within 1e-4 (SGD, 301 samples, 2 workers, noise 0.1).
    def train(name, ranks, batch, epochs, *extra):
        argv = base_args(tmp_path, name, "--batch-size", batch, "--lr", "0.05", "--workers", "2", "--epochs", str(epochs),
                         "--optimizer", "sgd", "--momentum", "0", "--set", "dataset.noise=0.1", *extra,
                         model=MLP, dataset=UNTIDY)
        if ranks == 1:
            assert main(argv) == 0
        else:
            out = scorch_train(argv, np_=ranks, extra_env={"SCORCH_BACKEND": backend})
            assert out.returncode == 0, out.stderr[-3000:]
    train("one", 1, "32", 2)
    train("two", 2, "16", 2)
    train("moved", 1, "32", 1)
    train("moved", 2, "32", 2, "--resume")
    one = torch.load(tmp_path / "one" / "checkpoints" / "last.pt", weights_only=True)["model"]
    for name in ("two", "moved"):
        other = torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)["model"]
        assert max_diff(one, other) < 1e-4, name
    # the comparison can fail: without the noise's seeds the runs part
    train("other-seed", 1, "32", 2, "--seed", "7")
    assert max_diff(one, torch.load(tmp_path / "other-seed" / "checkpoints" / "last.pt", weights_only=True)["model"]) > 1e-3
