"""A custom step (Socket.optimizers + Socket.training_step): the GAN example on 2 ranks x B equals
1 rank x 2B (torch.distributed and Horovod, under real mpirun), a mid-epoch stop resumes bitwise on
1 and 2 ranks (both backends) and within 1e-4 on 1 rank after 2, and contract errors are one line, exit 2.

Untidy on purpose: 999 training samples (no world size above 1 divides them) and --accumulate 3,
whose windows do not divide the epoch (999 = 20 x 48 + 39: a short last step). One epoch of 21 steps."""
import csv
import json
from pathlib import Path

import pytest
import torch

from scorch.cli.train import main
from scorch.errors import EXIT_BAD_INPUT, EXIT_PREEMPTED
from tests.helpers import FIXTURES, REPO, base_args, scorch_train, unmeasured

pytestmark = pytest.mark.mpi
MODEL = str(FIXTURES / "gan_model.py")
DATASET = str(REPO / "examples" / "gan" / "dataset.py")
STOP = "SCORCH_TEST_SIGTERM_AT_STEP"


def args(root, name, world, *extra):
    batch = {1: "16", 2: "8"}[world]  # the same global batch: 48 samples per step
    return base_args(root, name, "--batch-size", batch, "--accumulate", "3", "--epochs", "1",
                     "--set", "model.variant=scheduled", *extra, model=MODEL, dataset=DATASET)


def train(root, name, world, *extra, backend="torch", stop_at=None):
    out = scorch_train(args(root, name, world, "--backend", backend, *extra), np_=world if world > 1 else None,
                       extra_env={STOP: str(stop_at)} if stop_at is not None else None)
    return out


def checkpoint(run_dir):
    return torch.load(Path(run_dir) / "checkpoints" / "last.pt", weights_only=True)


def history(run_dir):
    with open(Path(run_dir) / "history.csv") as f:
        return [unmeasured(row) for row in csv.DictReader(f)]


REFERENCE = {"one": (1, "torch"), "two": (2, "torch"), "hvd": (2, "horovod")}  # uninterrupted runs: ranks, backend


def needs(backend):
    if backend == "horovod":
        pytest.importorskip("horovod.torch", reason="Horovod is not installed: run `make setup-horovod`")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted runs, each trained the first time a test asks for it (a Horovod one skips
    without Horovod, and only the tests that need it)."""
    root = tmp_path_factory.mktemp("gan")

    def reference(name):
        world, backend = REFERENCE[name]
        needs(backend)
        if not (root / name / "checkpoints" / "last.pt").exists():
            out = train(root, name, world, backend=backend)
            assert out.returncode == 0, out.stderr
            assert "strategy custom-step" in out.stderr
        return root / name
    return reference


@pytest.mark.parametrize("other", ["two", "hvd"])
def test_two_ranks_equal_one_rank_with_the_double_batch(runs, other):
    one, two = checkpoint(runs("one")), checkpoint(runs(other))
    assert json.loads((runs(other) / "meta.json").read_text())["backend"] == ("horovod" if other == "hvd" else "torch")
    assert one["step"] == two["step"] == 21
    for key in one["model"]:  # the generator's and the discriminator's weights
        assert torch.allclose(one["model"][key], two["model"][key], atol=1e-4, rtol=0), key
    assert sorted(one["optimizer"]["optimizers"]) == ["discriminator", "generator"]
    assert one["scheduler"] == two["scheduler"] and set(one["scaler"]) == {"discriminator", "generator"}
    for a, b in zip(history(runs("one")), history(runs(other))):  # exact metrics: every sample counted once
        for key in ("train/loss", "train/g_loss", "valid/loss", "valid/ring_distance"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-4), key


def assert_same_run(a, b):
    ca, cb = checkpoint(a), checkpoint(b)
    assert (ca["epoch"], ca["step"]) == (cb["epoch"], cb["step"])
    for key in ca["model"]:
        assert torch.equal(ca["model"][key], cb["model"][key]), key  # bitwise
    for name in ("discriminator", "generator"):
        for sa, sb in zip(ca["optimizer"]["optimizers"][name]["state"].values(),
                          cb["optimizer"]["optimizers"][name]["state"].values()):
            assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert ca["scheduler"] == cb["scheduler"]
    assert history(a) == history(b)


@pytest.mark.parametrize("world, backend", [(1, "torch"), (2, "torch"), (2, "horovod")])
def test_a_mid_epoch_stop_resumes_bitwise(runs, tmp_path, monkeypatch, world, backend):
    # Every rank gets SIGTERM in step 9 of the 21 of epoch 1 (one rank: in this process).
    needs(backend)
    if world == 1:
        monkeypatch.setenv(STOP, "9")
        assert main(args(tmp_path, "cut", 1)) == EXIT_PREEMPTED
        monkeypatch.delenv(STOP)
    else:
        out = train(tmp_path, "cut", world, backend=backend, stop_at=9)
        assert out.returncode == EXIT_PREEMPTED, out.stderr
    saved = checkpoint(tmp_path / "cut")
    assert 0 < saved["cursor"]["samples"] < 999 and saved["epoch"] == 0, "the stop was not mid-epoch"
    if world == 1:
        assert main(args(tmp_path, "cut", 1, "--resume")) == 0
    else:
        out = train(tmp_path, "cut", world, "--resume", backend=backend)
        assert out.returncode == 0, out.stderr
        assert f"backend {backend} (" in out.stderr
    assert_same_run(runs({1: "one", 2: "two"}[world] if backend == "torch" else "hvd"), tmp_path / "cut")


def test_a_mid_epoch_stop_on_two_ranks_resumes_on_one(runs, tmp_path):
    # Stopped in step 9 of 21 on 2 ranks x 8 x 3, resumed on 1 rank: scorch keeps the global batch of 48
    # (8 x 6 here) and the epoch's order, so both networks end within 1e-4 of the uninterrupted 2-rank run.
    out = train(tmp_path, "cut", 2, stop_at=9)
    assert out.returncode == EXIT_PREEMPTED, out.stderr
    saved = checkpoint(tmp_path / "cut")
    assert 0 < saved["cursor"]["samples"] < 999 and saved["epoch"] == 0, "the stop was not mid-epoch"
    # --backend auto: the saved torch backend would wait for a launcher this single process lacks
    assert main(args(tmp_path, "cut", 2, "--resume", "--backend", "auto")) == 0
    two, one = checkpoint(runs("two")), checkpoint(tmp_path / "cut")
    assert (one["epoch"], one["step"]) == (two["epoch"], two["step"]) and one["cursor"]["world_size"] == 1
    assert one["cursor"]["global_batch"] == 48
    for key in two["model"]:  # the generator's and the discriminator's weights
        assert key.startswith(("generator.", "discriminator.")), key
        assert torch.allclose(one["model"][key], two["model"][key], atol=1e-4, rtol=0), key
    assert one["scheduler"] == two["scheduler"]
    for a, b in zip(history(runs("two")), history(tmp_path / "cut")):
        for key in ("train/loss", "train/g_loss", "valid/loss", "valid/ring_distance"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-4), key


@pytest.mark.parametrize("variant, words", [
    ("no_update", "Socket.training_step returned without calling step.update(name)"),
    ("unknown_name", "step.update('critic'): no such optimizer; Socket.optimizers() returns ['discriminator', 'generator']"),
    ("bad_optimizers", "Socket.optimizers() returned list, expected a dict of names to torch.optim.Optimizer"),
])
def test_contract_errors_are_one_line_exit_2(tmp_path, capsys, variant, words):
    code = main(base_args(tmp_path, variant, "--epochs", "1", "--set", f"model.variant={variant}", model=MODEL, dataset=DATASET))
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert words in err and err.count("error:") == 1


def test_a_non_finite_step_is_skipped_for_its_optimizer_alone(tmp_path):
    # The generator's gradients are NaN in step 3: with --nan-policy skip its update is skipped there
    # (its own scaler and clipping too: --amp bf16, --clip-grad), the discriminator's goes on; --ema
    # averages after every step that either optimizer took.
    common = ["--epochs", "1", "--batch-size", "100", "--nan-policy", "skip", "--clip-grad", "0.5", "--amp", "bf16",
              "--ema", "0.9"]
    assert main(base_args(tmp_path, "nan", *common, "--set", "model.variant=nan_generator", model=MODEL, dataset=DATASET)) == 0
    assert main(base_args(tmp_path, "ok", *common, model=MODEL, dataset=DATASET)) == 0
    nan, ok = checkpoint(tmp_path / "nan"), checkpoint(tmp_path / "ok")
    assert nan["loop"]["skipped_steps"] == 1 and ok["loop"]["skipped_steps"] == 0
    assert all(torch.isfinite(v).all() for v in nan["model"].values())
    g, d = nan["optimizer"]["optimizers"]["generator"], nan["optimizer"]["optimizers"]["discriminator"]
    assert [int(s["step"]) for s in g["state"].values()] == [9] * len(g["state"])  # 10 steps, one skipped
    assert [int(s["step"]) for s in d["state"].values()] == [10] * len(d["state"])
    ema = nan["callbacks"]["ema"]
    assert ema["updates"] == 10 and not all(torch.equal(ema["params"][k], nan["model"][k]) for k in ema["params"])


def test_schedule_by_step_beside_the_schedulers_of_socket_optimizers_names_them(tmp_path, capsys):
    code = main(args(tmp_path, "sched", 1, "--schedule-by", "step"))
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert ("--schedule-by step: " + MODEL + " pairs its optimizers with schedulers in Socket.optimizers()") in err
    assert "Socket.scheduler," not in err and err.count("error:") == 1 and not (tmp_path / "sched").exists()


def test_fsdp_is_refused(tmp_path, capsys):
    code = main(base_args(tmp_path, "f", "--strategy", "fsdp", model=MODEL, dataset=DATASET))
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert "--strategy fsdp" in err and "custom step" in err and not (tmp_path / "f").exists()


def test_scorch_check_lists_the_optimizers(capsys):
    from scorch.cli.check import main as check

    assert check(["--model", str(REPO / "examples" / "gan" / "model.py"), "--dataset", DATASET, "--steps", "20",
                  "--min-drop", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "model.optimizer" in out and "custom step (Socket.training_step) with 2 optimizer(s): discriminator: Adam" in out
    assert "generator: Adam over 4,482 parameters" in out
